"""Drives Tollgate with the official Anthropic Python SDK, unmodified: plain and streamed
messages through the Anthropic-format route, the model list and token counting, and a governance
refusal surfacing as the SDK's own error type.

Environment: TOLLGATE_URL (http://host:port), TOLLGATE_KEY (a virtual key), TOLLGATE_MODEL (a
bare Anthropic model name). Prints one JSON object; exits non-zero on a broken expectation.
"""

import json
import os
import sys

import anthropic

base = os.environ["TOLLGATE_URL"]
key = os.environ["TOLLGATE_KEY"]
model = os.environ["TOLLGATE_MODEL"]

client = anthropic.Anthropic(base_url=f"{base}/anthropic", api_key=key, max_retries=0)
seen = {}

message = client.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hello"}])
assert message.role == "assistant", message
assert message.usage.output_tokens == 20, message.usage
seen["plain_text_words"] = len("".join(b.text for b in message.content if b.type == "text").split())

text = ""
with client.messages.stream(model=model, max_tokens=20, messages=[{"role": "user", "content": "hello"}]) as stream:
    for delta in stream.text_stream:
        text += delta
    final = stream.get_final_message()
assert final.usage.output_tokens == 20, final.usage
seen["stream_text_words"] = len(text.split())

seen["listed_models"] = [m.id for m in client.models.list()]
seen["counted_tokens"] = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hello"}]).input_tokens

try:
    client.messages.create(model="claude-not-allowed", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    sys.exit("a model outside the profile was served")
except anthropic.PermissionDeniedError as refused:
    seen["refused_status"] = refused.status_code

print(json.dumps(seen))
