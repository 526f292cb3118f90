//! `radmfa cluster`: writes the peer-link PKI (CA, node certificates) and the
//! shared cluster key and VAPID key (push approvals); files are created,
//! never overwritten.

use std::path::Path;

use anyhow::{anyhow, Context};

use super::args::ClusterCmd;

pub fn cluster(cmd: ClusterCmd) -> anyhow::Result<()> {
    use radmfa_server::peer::{generate_ca, generate_node_cert, Pem};
    pub fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::fs::PermissionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
        // The umask (0077, see main) would make a certificate owner-only.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    }
    match cmd {
        ClusterCmd::Init { dir, nodes } => {
            if nodes == 0 {
                return Err(anyhow!("--nodes must be at least 1"));
            }
            cluster(ClusterCmd::Ca { dir: dir.clone() })?;
            for node_id in 1..=nodes {
                cluster(ClusterCmd::Cert {
                    dir: dir.clone(),
                    node_id,
                })?;
            }
            let key = radmfa_otp::StateKey::generate();
            let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            write_new(&dir.join("cluster.key"), &format!("{hex}\n"), 0o600)?;
            println!(
                "wrote {}/cluster.key: copy it to every node ([challenge] cluster_key_file); \
                 every node also needs the primary's seed key ([server] key_file)",
                dir.display()
            );
            let vapid = radmfa_server::push::VapidKey::generate();
            let pem = zeroize::Zeroizing::new(vapid.to_pem().map_err(|e| anyhow!(e))?);
            write_new(&dir.join("vapid.key"), &pem, 0o600)?;
            println!(
                "wrote {}/vapid.key (push approvals): copy it to every node ([push] vapid_key_file)",
                dir.display()
            );
        }
        ClusterCmd::Ca { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let ca = generate_ca().map_err(|e| anyhow!(e))?;
            write_new(&dir.join("ca.key"), &ca.key, 0o600)?;
            write_new(&dir.join("ca.pem"), &ca.cert, 0o644)?;
            println!(
                "wrote {0}/ca.pem and {0}/ca.key; now `radmfa cluster cert --dir {0} --node-id N` for each node",
                dir.display()
            );
        }
        ClusterCmd::Cert { dir, node_id } => {
            if node_id == 0 {
                return Err(anyhow!("--node-id must be between 1 and 65535"));
            }
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .with_context(|| format!("cannot read {}", dir.join(name).display()))
            };
            let ca = Pem {
                cert: read("ca.pem")?,
                key: read("ca.key")?,
            };
            let node = generate_node_cert(&ca, node_id).map_err(|e| anyhow!(e))?;
            let (pem, key) = (
                dir.join(format!("node-{node_id}.pem")),
                dir.join(format!("node-{node_id}.key")),
            );
            write_new(&key, &node.key, 0o600)?;
            write_new(&pem, &node.cert, 0o644)?;
            println!(
                "wrote {} and {}; copy them with ca.pem to node {node_id} ([cluster] cert, key, ca)",
                pem.display(),
                key.display()
            );
        }
    }
    Ok(())
}
