//! The AMI and Graph emulators behind `SOURCES=ami` tests: a PBX with
//! FreePBX-style hints for 1001 (alice) and 1002 (bob), both registered,
//! and the binary set to use them.

use std::path::Path;
use std::process::Command;

use ami_emulator::{AmiEmulator, EmulatorConfig};
use graph_emulator::GraphEmulator;

/// The emulators, with the runtime that serves them.
pub struct AmiPeers {
    pub ami: AmiEmulator,
    pub graph: GraphEmulator,
    pub rt: tokio::runtime::Runtime,
}

impl AmiPeers {
    /// The PBX (manager user `blf`, secret `amisecret`) and Graph.
    pub fn start() -> AmiPeers {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ami = rt
            .block_on(AmiEmulator::start(
                EmulatorConfig::new()
                    .user("blf", "amisecret")
                    .freepbx_dnd(true)
                    .extensions(["1001", "1002"]),
            ))
            .unwrap();
        ami.register("1001");
        ami.register("1002");
        let graph = rt
            .block_on(GraphEmulator::start(
                graph_emulator::EmulatorConfig::default(),
            ))
            .unwrap();
        AmiPeers { ami, graph, rt }
    }

    /// `sip-blf-sync args` in `dir` with the extension list, AMI as the
    /// source, Graph, a dashboard on a free port and no debounce.
    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let exts = dir.join("extensions.json");
        std::fs::write(
            &exts,
            r#"[{"extension":"1001","email":"alice@contoso.com"},
                {"extension":"1002","email":"bob@contoso.com"}]"#,
        )
        .unwrap();
        let c = self.graph.config();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"));
        cmd.args(args)
            .current_dir(dir)
            .env("SOURCES", "ami")
            .env("AMI_HOST", self.ami.addr().to_string())
            .env("AMI_USERNAME", "blf")
            .env("AMI_SECRET", "amisecret")
            .env("EXTENSIONS_JSON", &exts)
            .env("PRESENCE_STATE_JSON", dir.join("presence-state.json"))
            .env("AZURE_TENANT_ID", &c.tenant_id)
            .env("AZURE_CLIENT_ID", &c.client_id)
            .env("AZURE_CLIENT_SECRET", &c.client_secret)
            .env("GRAPH_BASE_URL", self.graph.base_url())
            .env("AZURE_AUTHORITY_HOST", self.graph.authority_url())
            .env("HTTP_LISTEN", "127.0.0.1:0")
            .env("SYNC_DEBOUNCE_MS", "0")
            .env("RUST_LOG", "info")
            .env_remove("SIP_SERVER")
            .env_remove("NO_COLOR");
        cmd
    }

    /// `Availability/Activity` the user shows in Teams (empty when nothing).
    pub fn shows(&self, id: &str) -> String {
        self.graph
            .presence_of(id)
            .map(|p| format!("{}/{}", p.availability, p.activity))
            .unwrap_or_default()
    }
}
