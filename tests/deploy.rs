//! The deployment kit seen from outside: `deploy/docker/Dockerfile` (no Docker engine runs
//! here, so its lines are parsed and its invariants checked) and the configuration that
//! `deploy/k8s/` gives the service (every file goes through `stockwatch check-config`, which
//! rejects unknown keys). Schema validation of the Kubernetes manifests is
//! `deploy/k8s/validate.sh`'s job (it needs kubectl and the schemas, from PyPI).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The port of `http.listen` in the embedded defaults.
fn default_http_port() -> u16 {
    let cfg: toml::Table = read("config/default.toml")
        .parse()
        .expect("default.toml parses");
    let listen = cfg["http"]["listen"]
        .as_str()
        .expect("http.listen is a string");
    let addr: std::net::SocketAddr = listen.parse().expect("http.listen is IP:PORT");
    addr.port()
}

/// One Dockerfile instruction: the keyword in upper case and its arguments.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Instructions of a Dockerfile: continuation lines joined, comments and blank lines dropped
/// (also between continued lines, as Docker does).
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (trimmed, false),
        };
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(body);
        if !continued {
            let (keyword, args) = current
                .split_once(char::is_whitespace)
                .unwrap_or((&current, ""));
            out.push(Instruction {
                keyword: keyword.to_ascii_uppercase(),
                args: args.trim().to_owned(),
            });
            current.clear();
        }
    }
    assert!(
        current.is_empty(),
        "Dockerfile ends inside a continued line"
    );
    out
}

/// The stages: each starts at a FROM.
fn stages(ins: &[Instruction]) -> Vec<&[Instruction]> {
    let starts: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(!starts.is_empty(), "no FROM");
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| &ins[s..*starts.get(k + 1).unwrap_or(&ins.len())])
        .collect()
}

/// Arguments of an exec-form instruction (`["a", "b"]`).
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not exec (JSON) form: {args}: {e}"))
}

fn dockerfile() -> Vec<Instruction> {
    instructions(&read("deploy/docker/Dockerfile"))
}

#[test]
fn dockerfile_is_multi_stage_with_a_slim_runtime() {
    let ins = dockerfile();
    let st = stages(&ins);
    assert!(st.len() >= 2, "a multi-stage build");
    let from = &st.last().unwrap()[0].args;
    assert!(
        !from.contains("rust:"),
        "the runtime stage is not the toolchain image: FROM {from}"
    );
    let last = st.last().unwrap();
    assert!(
        last.iter()
            .any(|i| i.keyword == "COPY" && i.args.contains("--from=builder")),
        "the runtime stage copies the binary from the builder"
    );
    let builds: Vec<&Instruction> = ins
        .iter()
        .filter(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .collect();
    assert!(!builds.is_empty(), "a cargo build step");
    assert!(
        builds.iter().all(|i| i.args.contains("--locked")),
        "builds use Cargo.lock as is (--locked)"
    );
    // The dependency layer is built before the sources are copied in (cargo-chef).
    let cook = ins
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains("cargo chef cook"));
    let build = ins
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains("cargo build"));
    assert!(
        matches!((cook, build), (Some(c), Some(b)) if c < b),
        "cargo chef cook runs before cargo build"
    );
}

#[test]
fn dockerfile_final_stage_runs_as_a_numeric_non_root_user() {
    let ins = dockerfile();
    let st = stages(&ins);
    let last = st.last().unwrap();
    let user = last
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("the runtime stage sets USER");
    let mut ids = user.args.split(':');
    let uid: u32 = ids.next().and_then(|u| u.parse().ok()).unwrap_or_else(|| {
        panic!(
            "USER {} is not a numeric uid (runAsNonRoot needs one)",
            user.args
        )
    });
    assert_ne!(uid, 0, "USER is root");
    if let Some(gid) = ids.next() {
        let gid: u32 = gid.parse().expect("numeric gid");
        assert_ne!(gid, 0, "group is root");
    }
}

#[test]
fn dockerfile_exposes_the_configured_http_port() {
    let port = default_http_port();
    let ins = dockerfile();
    let st = stages(&ins);
    let last = st.last().unwrap();
    let exposed: Vec<u16> = last
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| i.args.split_whitespace())
        .map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            assert_eq!(proto, "tcp", "EXPOSE {p}");
            n.parse().unwrap_or_else(|_| panic!("EXPOSE {p}"))
        })
        .collect();
    assert_eq!(
        exposed,
        vec![port],
        "EXPOSE = the port of http.listen in config/default.toml"
    );
    // If the image moves the bind address off loopback, it keeps the port.
    for env in last.iter().filter(|i| i.keyword == "ENV") {
        for kv in env.args.split_whitespace() {
            if let Some(v) = kv.strip_prefix("STOCKWATCH__HTTP__LISTEN=") {
                let addr: std::net::SocketAddr = v.parse().expect("IP:PORT");
                assert_eq!(addr.port(), port, "ENV {kv}");
            }
        }
    }
}

#[test]
fn dockerfile_entrypoint_is_stockwatch_and_smoke_tested() {
    let ins = dockerfile();
    let st = stages(&ins);
    let last = st.last().unwrap();
    let entry = last
        .iter()
        .rev()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("ENTRYPOINT in the runtime stage");
    let argv = exec_form(&entry.args);
    let bin = argv.first().expect("ENTRYPOINT names a program");
    assert_eq!(Path::new(bin).file_name().unwrap(), "stockwatch");
    assert!(
        last.iter().any(|i| i.keyword == "RUN"
            && i.args.contains(bin.as_str())
            && i.args.contains("--version")),
        "a `{bin} --version` smoke step in the runtime stage (it loads with that stage's libraries)"
    );
}

#[test]
fn dockerfile_has_oci_labels() {
    let ins = dockerfile();
    let labels: String = ins
        .iter()
        .filter(|i| i.keyword == "LABEL")
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "created",
        "licenses",
        "source",
    ] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "LABEL org.opencontainers.image.{key}"
        );
    }
}

#[test]
fn dockerignore_keeps_what_the_build_embeds() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_owned())
        .collect();
    for excluded in [".git", "**/target"] {
        assert!(
            patterns.iter().any(|p| p == excluded),
            "{excluded} is ignored"
        );
    }
    // The manifest, the sources, the bench target it declares, and the files include_str!
    // embeds (config/default.toml, data/frn50k_sample.csv).
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "benches",
        "config",
        "data",
    ] {
        assert!(
            !patterns
                .iter()
                .any(|p| p == needed || p == "*" || p.starts_with(&format!("{needed}/"))),
            "{needed} must reach the build context"
        );
    }
}

/// `STOCKWATCH__*` variables with literal values in the base StatefulSet (`- name:` then
/// `value:`), plus the ones it takes from elsewhere, with stand-in values.
fn statefulset_env(password_file: &Path) -> Vec<(String, String)> {
    let text = read("deploy/k8s/base/statefulset.yaml");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut env = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        let Some(name) = l.strip_prefix("- name: STOCKWATCH__") else {
            continue;
        };
        let name = format!("STOCKWATCH__{name}");
        match lines.get(n + 1).and_then(|v| v.strip_prefix("value: ")) {
            Some(v) => env.push((name, v.trim_matches('"').to_owned())),
            // valueFrom: the downward API (pod name) or the Secret.
            None => {
                let stand_in = match name.as_str() {
                    "STOCKWATCH__SERVICE__INSTANCE_ID" => "stockwatch-0",
                    "STOCKWATCH__KAFKA__SECURITY__SASL_USERNAME" => "stockwatch",
                    other => panic!("{other}: valueFrom of an unexpected kind"),
                };
                env.push((name, stand_in.to_owned()));
            }
        }
    }
    assert!(
        env.iter().any(|(k, v)| k == "STOCKWATCH__HTTP__LISTEN"
            && v.ends_with(&format!(":{}", default_http_port()))),
        "the StatefulSet binds http.listen's port: {env:?}"
    );
    // The Secret is mounted elsewhere here: point the configured path at a stand-in file.
    env.push((
        "STOCKWATCH__KAFKA__SECURITY__SASL_PASSWORD_FILE".into(),
        password_file.display().to_string(),
    ));
    env
}

fn check_config(file: &Path, env: &[(String, String)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stockwatch"));
    cmd.arg("check-config").arg("--config").arg(file);
    for (k, _) in std::env::vars() {
        if k.to_ascii_uppercase().starts_with("STOCKWATCH") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run stockwatch check-config")
}

#[test]
fn k8s_config_files_are_accepted_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("sasl-password");
    std::fs::write(&password, "stand-in-password-for-the-test\n").unwrap();
    let env = statefulset_env(&password);
    let files = [
        "deploy/k8s/base/stockwatch.toml",
        "deploy/k8s/overlays/staging/stockwatch.toml",
        "deploy/k8s/overlays/prod/stockwatch.toml",
    ];
    for rel in files {
        let file = repo(rel);
        // As deployed. A build without rdkafka's `ssl` feature refuses TLS and SCRAM, and
        // only that.
        let out = check_config(&file, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            assert!(
                stdout.contains("delivery = \"exactly_once\""),
                "{rel}: {stdout}"
            );
            assert!(
                stdout.contains("protocol = \"sasl_ssl\""),
                "{rel}: {stdout}"
            );
            assert!(
                !stdout.contains("stand-in-password"),
                "{rel}: the password is printed"
            );
        } else {
            assert!(
                stderr.contains("build with rdkafka's `ssl` feature"),
                "{rel} refused for another reason than a build without `ssl`: {stderr}"
            );
        }
        // Every key and value but what needs `ssl`, whatever the build: the same over SASL
        // PLAIN without TLS.
        let mut plain = env.clone();
        plain.push((
            "STOCKWATCH__KAFKA__SECURITY__PROTOCOL".into(),
            "sasl_plaintext".into(),
        ));
        plain.push((
            "STOCKWATCH__KAFKA__SECURITY__ALLOW_PLAINTEXT_NON_LOOPBACK".into(),
            "true".into(),
        ));
        plain.push((
            "STOCKWATCH__KAFKA__SECURITY__SASL_MECHANISM".into(),
            "PLAIN".into(),
        ));
        let out = check_config(&file, &plain);
        assert!(
            out.status.success(),
            "{rel}: check-config refuses it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_config_refuses_an_unknown_key_in_a_deploy_file() {
    // The guard the previous test relies on: a key the service does not know is an error.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stockwatch.toml");
    let base = read("deploy/k8s/base/stockwatch.toml");
    std::fs::write(
        &file,
        base.replace("[service]\n", "[service]\nreplicas = 3\n"),
    )
    .unwrap();
    assert_ne!(std::fs::read_to_string(&file).unwrap(), base);
    let out = check_config(&file, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replicas"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn k8s_ports_match_the_configured_http_port() {
    let port = default_http_port();
    let sts = read("deploy/k8s/base/statefulset.yaml");
    assert!(
        sts.lines()
            .any(|l| l.trim() == format!("containerPort: {port}")),
        "containerPort {port}"
    );
    let svc = read("deploy/k8s/base/service.yaml");
    assert!(
        svc.lines().any(|l| l.trim() == format!("port: {port}")),
        "Service port {port}"
    );
}
