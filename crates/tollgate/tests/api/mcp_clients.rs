//! Managing MCP clients and Virtual MCPs: round trips, secrets never served, clear 400s,
//! the deprecated alias, paging and search, clients the config file declares, and the profile
//! rule that an excluded tool cannot belong to a server granted whole.

use serde_json::{Value, json};
use tollgate_testkit::{Backend, TestApp};

use crate::FAMILIES;

fn http_client(id: &str) -> Value {
    json!({"client_id": id, "name": id, "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": "Bearer upstream-secret-value-123"}, "tool_pricing": {"search": 0.002}, "tool_sync_interval": 5})
}

on_both_backends! {
    async fn a_client_round_trips_with_its_secrets_masked_in_every_answer(app: &TestApp) {
        let created = app.admin().post("/api/mcp/client", http_client("docs")).await.expect(200).clone();
        assert_eq!(created["config"]["client_id"], "docs");
        assert_eq!(created["config"]["tool_pricing"]["search"], 0.002);
        assert_eq!(created["config"]["tools_to_execute"], json!(["*"]));
        assert!(["connecting", "error"].contains(&created["state"].as_str().unwrap_or_default()), "{created}");
        let listed = app.admin().get("/api/mcp/clients").await.expect(200).clone();
        let read = app.admin().get("/api/mcp/client/docs").await.expect(200).clone();
        for answer in [&created, &listed, &read] {
            assert!(!answer.to_string().contains("upstream-secret-value-123"), "a secret was served: {answer}");
        }
        let masked = read["config"]["headers"]["Authorization"].as_str().unwrap_or_default().to_owned();
        assert!(masked.contains('…'), "{masked}");
        // Sending the masked value back keeps the secret; the stored row never holds it in clear.
        let mut again = http_client("docs");
        again["headers"]["Authorization"] = json!(masked);
        again["disabled"] = json!(true);
        let replaced = app.admin().put("/api/mcp/client/docs", again).await.expect(200).clone();
        assert_eq!(replaced["config"]["disabled"], true);
        assert_eq!(replaced["config"]["headers"]["Authorization"], json!(masked));
        assert_eq!(app.count("SELECT COUNT(*) FROM mcp_clients WHERE config LIKE '%upstream-secret-value-123%'").await, 0);
        app.admin().post("/api/mcp/client/docs/reconnect", json!({})).await.expect(200);
        app.admin().delete("/api/mcp/client/docs").await.expect(200);
        app.admin().get("/api/mcp/client/docs").await.expect_error(404);
        app.admin().delete("/api/mcp/client/docs").await.expect_error(404);
        app.admin().post("/api/mcp/client/nobody/reconnect", json!({})).await.expect_error(404);
    }

    async fn bad_clients_are_refused_with_the_field_named(app: &TestApp) {
        let cases = [
            (json!({"name": "my-docs", "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp"}), "name"),
            (json!({"name": "docs", "connection_type": "sse", "connection_string": "http://127.0.0.1:9/sse"}), "connection_type"),
            (json!({"name": "docs", "connection_type": "http"}), "connection_string"),
            (json!({"name": "docs", "connection_type": "http", "connection_string": "http://169.254.169.254/mcp"}), "connection_string"),
            (json!({"name": "docs", "connection_type": "stdio", "stdio_config": {"command": "/bin/sh", "args": ["-c", "id"]}}), "stdio_config.command"),
            (json!({"name": "docs", "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp", "headers": {"bad name": "x"}}), "headers.bad name"),
            (json!({"name": "docs", "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp", "tool_sync_interval": 10081}), "tool_sync_interval"),
        ];
        for (body, param) in cases {
            let reply = app.admin().post("/api/mcp/client", body.clone()).await;
            reply.expect_error(400);
            assert_eq!(reply.body["error"]["param"], param, "{body} → {}", reply.body);
        }
        for body in [json!({"name": "docs", "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp", "colour": 1}),
            json!({"name": "docs", "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp", "tool_pricing": {"x": -1}}), json!([])] {
            app.admin().post("/api/mcp/client", body).await.expect_error(400);
        }
        app.admin().post("/api/mcp/client", http_client("docs")).await.expect(200);
        app.admin().post("/api/mcp/client", http_client("docs")).await.expect_error(409);
        let mut renamed = http_client("docs");
        renamed["client_id"] = json!("other");
        app.admin().put("/api/mcp/client/docs", renamed).await.expect_error(400);
    }

    async fn virtual_mcps_serve_on_both_paths_keep_their_slug_and_hold_their_clients(app: &TestApp) {
        app.admin().post("/api/mcp/client", http_client("docs")).await.expect(200);
        let body = json!({"name": "Research", "endpoint_slug": "research", "tools": [{"mcp_client_id": "docs", "tool_names": ["search"]}]});
        let created = app.admin().post("/api/mcp/virtual-mcps", body).await.expect(200).clone();
        let id = created["virtual_mcp"]["id"].as_i64().unwrap_or_default();
        assert_eq!(created["virtual_mcp"]["enabled"], true);
        let via_alias = app.admin().get(&format!("/api/mcp/tool-groups/{id}")).await.expect(200).clone();
        assert_eq!(via_alias["virtual_mcp"]["endpoint_slug"], "research");
        assert_eq!(app.admin().get("/api/mcp/tool-groups").await.expect(200)["count"], 1);
        let moved = json!({"name": "Research", "endpoint_slug": "elsewhere", "tools": []});
        assert_eq!(app.admin().put(&format!("/api/mcp/virtual-mcps/{id}"), moved).await.expect_error(400), "endpoint_slug: cannot change once set");
        let off = json!({"name": "Research", "enabled": false, "tools": [{"mcp_client_id": "docs", "tool_names": []}]});
        assert_eq!(app.admin().put(&format!("/api/mcp/virtual-mcps/{id}"), off).await.expect(200)["virtual_mcp"]["enabled"], false);
        let unknown = json!({"name": "Other", "endpoint_slug": "other", "tools": [{"mcp_client_id": "nobody", "tool_names": ["*"]}]});
        app.admin().post("/api/mcp/virtual-mcps", unknown).await.expect_error(400);
        let same_slug = json!({"name": "Other", "endpoint_slug": "research", "tools": []});
        app.admin().post("/api/mcp/virtual-mcps", same_slug).await.expect_error(409);
        // A client a Virtual MCP holds cannot go until it is taken out.
        app.admin().delete("/api/mcp/client/docs").await.expect_error(409);
        app.admin().delete(&format!("/api/mcp/tool-groups/{id}")).await.expect(200);
        app.admin().delete("/api/mcp/client/docs").await.expect(200);
    }

    async fn the_client_list_pages_and_searches(app: &TestApp) {
        for id in ["alpha", "beta", "gamma"] {
            app.admin().post("/api/mcp/client", http_client(id)).await.expect(200);
        }
        let page = app.admin().get("/api/mcp/clients?limit=2&offset=1").await.expect(200).clone();
        let names: Vec<&str> = page["clients"].as_array().into_iter().flatten().filter_map(|c| c["config"]["name"].as_str()).collect();
        assert_eq!((names, page["total_count"].clone(), page["count"].clone()), (vec!["beta", "gamma"], json!(3), json!(2)));
        let found = app.admin().get("/api/mcp/clients?search=AMM").await.expect(200).clone();
        assert_eq!(found["total_count"], 1);
        app.admin().get("/api/mcp/clients?limit=-1").await.expect_error(400);
        app.anonymous().get("/api/mcp/clients").await.expect_error(401);
    }

    async fn an_exclude_on_a_server_granted_whole_is_refused_at_create_update_and_propagate(app: &TestApp) {
        let whole = json!({"name": "Contradiction", "mcp_servers": [{"mcp_server_id": "docs"}],
            "mcp_tool_overrides": [{"mcp_client_id": "docs", "tool_name": "delete", "action": "exclude"}]});
        app.admin().post(FAMILIES[0], whole).await.expect_error(400);
        let profile = json!({"name": "Fine", "mcp_servers": [{"mcp_server_id": "docs"}]});
        let id = crate::create_profile(app, profile).await;
        let excluding = json!({"mcp_tool_overrides": [{"mcp_client_id": "docs", "tool_name": "delete", "action": "exclude"}]});
        app.admin().put(&format!("{}/{id}", FAMILIES[0]), excluding).await.expect_error(400);
        // The template moves to the exclude in two steps; its copies still grant docs whole.
        let role = crate::create_role(app, "fine").await;
        crate::create_user(app, "fine@example.com", Some(role)).await;
        crate::attach_default(app, id, role).await;
        let swap = json!({"mcp_servers": [], "mcp_tool_overrides": [{"mcp_client_id": "docs", "tool_name": "delete", "action": "exclude"}]});
        app.admin().put(&format!("{}/{id}", FAMILIES[0]), swap).await.expect(200);
        let half = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["mcp_tool_overrides"]})).await;
        assert!(half.expect_error(400).contains("mcp_servers and mcp_tool_overrides together"), "{}", half.body);
        let both = json!({"fields": ["mcp_servers", "mcp_tool_overrides"]});
        app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), both).await.expect(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_the_config_file_declares_are_applied_at_start_and_read_only_through_the_api() {
    let config = "[[mcp_clients]]\nname = \"files\"\nconnection_type = \"stdio\"\n\
                  stdio_config = { command = \"/usr/bin/true\", envs = { TOKEN = \"declared-secret-value-9\" } }\n";
    let app = TestApp::start_with_config(Backend::Sqlite, config).await;
    let read = app.admin().get("/api/mcp/client/files").await.expect(200).clone();
    assert_eq!(read["config"]["declared"], true);
    assert!(!read.to_string().contains("declared-secret-value-9"), "{read}");
    let change = json!({"name": "files", "connection_type": "stdio", "stdio_config": {"command": "/usr/bin/true"}});
    app.admin().put("/api/mcp/client/files", change).await.expect_error(409);
    app.admin().delete("/api/mcp/client/files").await.expect_error(409);
    let same_name = json!({"name": "files", "connection_type": "http", "connection_string": "http://127.0.0.1:9/mcp"});
    app.admin().post("/api/mcp/client", same_name).await.expect_error(409);
    // A restart applies the file again without duplicating it.
    let app = app.restart(config).await;
    assert_eq!(app.admin().get("/api/mcp/clients").await.expect(200)["total_count"], 1);
    app.stop().await;
}
