//! The `googleemu` binary as someone starts it.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

#[tokio::test]
async fn the_binary_serves_the_built_in_users_on_the_port_given() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_googleemu"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--allow-http-push", "--freebusy-visibility", "forbidden"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");
    let doc: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("http://127.0.0.1:{port}"));
    let users: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/_emu/api/users")).await.unwrap().json().await.unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 4);
    child.kill().unwrap();
    let _ = child.wait();

    let out = Command::new(env!("CARGO_BIN_EXE_googleemu")).args(["--users", "/nonexistent.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}
