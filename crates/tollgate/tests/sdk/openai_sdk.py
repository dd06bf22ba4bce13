"""Drives Tollgate with the official OpenAI Python SDK, unmodified: plain and streamed chat,
model listing, and a governance refusal surfacing as the SDK's own error type.

Environment: TOLLGATE_URL (http://host:port), TOLLGATE_KEY (a virtual key), TOLLGATE_MODEL.
Prints one JSON object with what it saw; exits non-zero on the first broken expectation.
"""

import json
import os
import sys

import openai

base = os.environ["TOLLGATE_URL"]
key = os.environ["TOLLGATE_KEY"]
model = os.environ["TOLLGATE_MODEL"]

client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
seen = {}

reply = client.chat.completions.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hello"}])
assert reply.choices[0].message.role == "assistant", reply
assert reply.usage is not None and reply.usage.completion_tokens == 20, reply.usage
seen["plain_content_words"] = len(reply.choices[0].message.content.split())

stream = client.chat.completions.create(
    model=model, max_tokens=20, stream=True, stream_options={"include_usage": True},
    messages=[{"role": "user", "content": "hello"}],
)
text, usage = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage is not None:
        usage = chunk.usage
assert usage is not None and usage.completion_tokens == 20, usage
seen["stream_text_words"] = len(text.split())

models = [m.id for m in client.models.list()]
assert model in models, models
seen["models"] = models

try:
    client.chat.completions.create(model="openai/not-allowed", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    sys.exit("a model outside the profile was served")
except openai.PermissionDeniedError as refused:
    seen["refused_status"] = refused.status_code
    seen["refused_message"] = str(refused.message)

bad = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-bf-00000000-0000-0000-0000-000000000000", max_retries=0)
try:
    bad.chat.completions.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    sys.exit("an unknown key was served")
except openai.AuthenticationError as refused:
    seen["unknown_key_status"] = refused.status_code

print(json.dumps(seen))
