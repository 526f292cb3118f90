//! `radmfa user`: add, change, list, show, enable, disable, delete, unlock
//! users, set passwords and PINs, list and remove push devices, import a CSV
//! file.

use anyhow::anyhow;
use radmfa_server::admin::{
    AdminRequest, Deleted, DeviceList, DeviceRemoved, EnrollmentMail, NewUser, PasswordChanged,
    PinMode, PinSet, Unlocked, UserAdded, UserChange, UserEnabled, UserView,
};
use radmfa_server::RuntimeConfig;

use super::args::{MethodArg, UserCmd};
use super::call::call;
use super::input::read_secret_stdin;
use super::print::{
    esc, json_pretty, kind_name, print_table, print_warnings, show_time, show_token,
};

pub fn user(cfg: &RuntimeConfig, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            display_name,
            email,
            phone,
            language,
            method,
            groups,
            password,
            device_token,
            disabled,
            send_email,
            generate_pin,
        } => {
            let password = password.read()?;
            let v: UserAdded = call(
                cfg,
                AdminRequest::UserAdd(NewUser {
                    name,
                    display_name,
                    email,
                    phone,
                    language,
                    method: method.method(),
                    groups,
                    password,
                    device_token,
                    pin: None,
                    enabled: !disabled,
                    send_email,
                    generate_pin,
                }),
            )?;
            println!("added user {}", v.user.name);
            print_enrollment_mail(v.enrollment_mail.as_ref());
            print_warnings(&v.warnings);
        }
        UserCmd::Set {
            name,
            display_name,
            email,
            phone,
            language,
            method,
            device_token,
            groups,
        } => {
            let _: UserView = call(
                cfg,
                AdminRequest::UserSet(UserChange {
                    name: name.clone(),
                    display_name,
                    email,
                    phone,
                    language,
                    method: method.map(MethodArg::method),
                    device_token,
                    groups,
                }),
            )?;
            println!("updated user {name}");
        }
        UserCmd::Pin {
            name,
            pin,
            pin_stdin,
            clear,
            no_change,
        } => set_pin(cfg, name, pin, pin_stdin, clear, no_change)?,
        UserCmd::List { json } => list(cfg, json)?,
        UserCmd::Show { name, json } => show(cfg, name, json)?,
        UserCmd::Enable { name } => {
            let _: UserEnabled = call(
                cfg,
                AdminRequest::UserSetEnabled {
                    name: name.clone(),
                    enabled: true,
                },
            )?;
            println!("enabled user {name}");
        }
        UserCmd::Disable { name } => {
            let _: UserEnabled = call(
                cfg,
                AdminRequest::UserSetEnabled {
                    name: name.clone(),
                    enabled: false,
                },
            )?;
            println!("disabled user {name}");
        }
        UserCmd::Delete { name } => {
            let _: Deleted = call(cfg, AdminRequest::UserDelete { name: name.clone() })?;
            println!("deleted user {name}");
        }
        UserCmd::Unlock { name } => {
            let v: Unlocked = call(cfg, AdminRequest::UserUnlock { name: name.clone() })?;
            if v.was_locked_until == 0 {
                println!("unlocked user {name} (no lock was recorded; failure counts cleared)");
            } else {
                println!("unlocked user {name} (was locked: {})", v.was_lock_reason);
            }
        }
        UserCmd::Devices { name, json } => devices(cfg, name, json)?,
        UserCmd::DeviceRemove { name, id } => device_remove(cfg, name, id)?,
        UserCmd::Passwd { name, password } => {
            let password = password
                .read()?
                .ok_or_else(|| anyhow!("give --password or --password-stdin"))?;
            let _: PasswordChanged = call(
                cfg,
                AdminRequest::UserPasswd {
                    name: name.clone(),
                    password,
                },
            )?;
            println!("password changed for {name}");
        }
        UserCmd::Import {
            csv,
            dry_run,
            continue_on_error,
            send_email,
        } => super::import::users(cfg, &csv, dry_run, continue_on_error, send_email)?,
    }
    Ok(())
}

/// `radmfa user pin NAME --pin P | --pin-stdin [--no-change] | --clear`.
fn set_pin(
    cfg: &RuntimeConfig,
    name: String,
    pin: Option<String>,
    pin_stdin: bool,
    clear: bool,
    no_change: bool,
) -> anyhow::Result<()> {
    let pin = match (pin, pin_stdin, clear) {
        (Some(p), _, _) => Some(p),
        (None, true, _) => Some(read_secret_stdin("PIN")?),
        (None, false, true) => None,
        (None, false, false) => {
            return Err(anyhow!("give --pin, --pin-stdin or --clear"));
        }
    };
    let set = pin.is_some();
    let req = match pin {
        // A PIN the user chose: set without asking them to change it.
        Some(pin) if no_change => AdminRequest::UserPinChange {
            name: name.clone(),
            pin,
        },
        pin => AdminRequest::UserPin {
            name: name.clone(),
            pin,
        },
    };
    let _: PinSet = call(cfg, req)?;
    if set {
        println!("PIN set for {name} (PIN mode)");
    } else {
        println!("PIN cleared for {name} (standard mode)");
    }
    Ok(())
}

/// What became of the enrollment mail of `user add --send-email` (never
/// the PIN: only the mail tells it).
fn print_enrollment_mail(mail: Option<&EnrollmentMail>) {
    let Some(m) = mail else { return };
    let template = m.template.as_deref().unwrap_or("-");
    match (m.sent, m.pin_generated) {
        (true, true) => println!(
            "enrollment mail sent ({template}), with an initial PIN that must be changed at the first sign-in"
        ),
        (true, false) => println!("enrollment mail sent ({template})"),
        (false, _) => println!("enrollment mail not sent (see the warnings)"),
    }
}

/// `radmfa user list`: a table, or the JSON array with `--json`.
fn list(cfg: &RuntimeConfig, json: bool) -> anyhow::Result<()> {
    let users: Vec<UserView> = call(cfg, AdminRequest::UserList)?;
    if json {
        println!("{}", json_pretty(&users)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                esc(&u.name),
                esc(&u.display_name),
                esc(&u.method),
                if u.enabled { "yes" } else { "no" }.into(),
                u.token.as_ref().map_or("-", |t| kind_name(t.kind)).into(),
                esc(&u.email),
                esc(&u.phone),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "DISPLAY NAME",
            "METHOD",
            "ENABLED",
            "TOKEN",
            "EMAIL",
            "PHONE",
        ],
        &rows,
    );
    Ok(())
}

/// `radmfa user show NAME`: one field a line (in the JSON's order), or the
/// JSON object with `--json`.
fn show(cfg: &RuntimeConfig, name: String, json: bool) -> anyhow::Result<()> {
    let u: UserView = call(cfg, AdminRequest::UserShow { name })?;
    if json {
        println!("{}", json_pretty(&u)?);
        return Ok(());
    }
    let rows = [
        ("created", show_time(u.created)),
        (
            "disabled_reason",
            u.disabled_reason.clone().unwrap_or_else(|| "-".into()),
        ),
        ("display_name", u.display_name.clone()),
        ("email", u.email.clone()),
        ("enabled", u.enabled.to_string()),
        ("groups", serde_json::to_string(&u.groups)?),
        ("has_device_token", u.has_device_token.to_string()),
        ("has_password", u.has_password.to_string()),
        (
            "language",
            if u.language.is_empty() {
                "- (the policy's, else the default)".into()
            } else {
                u.language.clone()
            },
        ),
        ("lock_reason", u.lock_reason.clone()),
        ("locked_until", show_time(u.locked_until)),
        ("method", u.method.clone()),
        ("name", u.name.clone()),
        ("phone", u.phone.clone()),
        ("extension", u.extension.clone()),
        ("pin_change_required", u.pin_change_required.to_string()),
        (
            "pin_mode",
            match u.pin_mode {
                PinMode::Pin => "pin",
                PinMode::Standard => "standard",
            }
            .to_string(),
        ),
        ("token", u.token.as_ref().map_or("-".into(), show_token)),
        ("updated", show_time(u.updated)),
    ];
    for (k, shown) in &rows {
        println!("{k:<14} {}", radmfa_server::text::Escaped(shown));
    }
    Ok(())
}

/// `user devices NAME`: the browsers registered for push approvals.
fn devices(cfg: &RuntimeConfig, name: String, json: bool) -> anyhow::Result<()> {
    let v: DeviceList = call(cfg, AdminRequest::UserDevices { name })?;
    if json {
        println!("{}", json_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v
        .devices
        .iter()
        .map(|d| {
            vec![
                esc(&d.id),
                esc(&d.name),
                esc(&d.push_service),
                show_time(d.created),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "PUSH SERVICE", "REGISTERED"], &rows);
    Ok(())
}

/// `user device-remove NAME ID`.
fn device_remove(cfg: &RuntimeConfig, name: String, id: String) -> anyhow::Result<()> {
    let _: DeviceRemoved = call(
        cfg,
        AdminRequest::UserDeviceRemove {
            name: name.clone(),
            id: id.clone(),
        },
    )?;
    println!("removed device {id} of user {}", esc(&name));
    Ok(())
}
