//! `radmfa check-config`: the configuration parses (done before any
//! command), the files it names load, and with `--connect` its peers answer.

use anyhow::anyhow;
use radmfa_server::RuntimeConfig;

/// Beyond parsing: the files the configuration names must be usable; with
/// `connect`, the peers it names must answer.
pub fn check_config(cfg: &RuntimeConfig, connect: bool, user: Option<&str>) -> anyhow::Result<()> {
    if let Some(c) = &cfg.cluster {
        radmfa_server::peer::PeerTls::load(&c.ca, &c.cert, &c.key)
            .map_err(|e| anyhow!("{}: [cluster]: {e}", cfg.origin))?;
    }
    if let Some(p) = &cfg.portal {
        radmfa_server::portal::check(p).map_err(|e| anyhow!("{}: [portal]: {e}", cfg.origin))?;
    }
    if let Some(a) = &cfg.api {
        radmfa_server::api::tls::load(&a.cert, &a.key)
            .map_err(|e| anyhow!("{}: [api]: {e}", cfg.origin))?;
    }
    if let Some(r) = &cfg.radsec {
        radmfa_server::radsec::RadsecTls::load(r, Default::default())
            .map_err(|e| anyhow!("{}: [radsec]: {e}", cfg.origin))?;
    }
    println!("{}: ok", cfg.origin);
    print_missing_texts(cfg)?;
    if !connect {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = rt.block_on(radmfa_server::checks::run(cfg, user));
    if checks.is_empty() {
        println!(
            "nothing to connect to: no [directory], [[upstream]], [gateway] or [[cluster.peer]]"
        );
    }
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    for c in &checks {
        match &c.result {
            Ok(detail) => println!("ok      {}: {detail}", c.target),
            Err(reason) => println!("FAILED  {}: {reason}", c.target),
        }
    }
    if failed > 0 {
        return Err(anyhow!(
            "{failed} of {} connection checks failed",
            checks.len()
        ));
    }
    Ok(())
}

/// The texts each language lacks (shown in English instead), or that every
/// language is complete.
fn print_missing_texts(cfg: &RuntimeConfig) -> anyhow::Result<()> {
    let catalog = radmfa_server::i18n::Catalog::load(cfg.i18n.dir.as_deref())?;
    let missing = catalog.missing();
    if missing.is_empty() {
        println!("texts: en, nl, de, fr complete");
    }
    for (lang, keys) in missing {
        let names: Vec<String> = keys
            .iter()
            .map(|k| format!("[{}] {}", k.section(), k.name()))
            .collect();
        println!(
            "texts: {lang} lacks {} (shown in English): {}",
            keys.len(),
            names.join(", ")
        );
    }
    Ok(())
}
