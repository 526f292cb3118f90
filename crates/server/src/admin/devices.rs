//! Web Push devices of a user (browsers registered for sign-in approvals in
//! the portal): list, add (the portal's registration), remove (the user in
//! the portal, an admin through the CLI or API, and the sender when the push
//! service says a subscription is gone). Devices live in the user record, so
//! they replicate like the rest of it; the endpoint URLs never leave this
//! file except to the sender (results show only the push service's host).

use radmfa_store::PushDevice;

use super::context::Ctx;
use super::error::{user_not_found, AdminError};
use super::request::NewDevice;
use super::results::{DeviceList, DeviceRemoved, DeviceView};

/// The user's devices.
pub fn list(ctx: Ctx<'_>, name: &str) -> Result<DeviceList, AdminError> {
    let u = ctx
        .store
        .get_user(name)?
        .ok_or_else(|| user_not_found(name))?;
    Ok(DeviceList {
        user: u.name.clone(),
        devices: u.push_devices.iter().map(DeviceView::new).collect(),
    })
}

/// Registers a browser for `n.user`. The same endpoint registered again
/// replaces the old entry (a browser re-subscribing); at most
/// [`radmfa_store::MAX_PUSH_DEVICES`] per user.
pub fn add(ctx: Ctx<'_>, n: NewDevice) -> Result<DeviceView, AdminError> {
    let mut id = [0u8; 8];
    rand::fill(&mut id[..]);
    let device = PushDevice {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        name: n.name.trim().to_string(),
        endpoint: n.endpoint,
        p256dh: n.p256dh,
        auth: n.auth,
        created: ctx.now,
    };
    device.validate()?;
    let user = n.user.as_str();
    let u = ctx
        .store
        .get_user(user)?
        .ok_or_else(|| user_not_found(user))?;
    let others = u
        .push_devices
        .iter()
        .filter(|d| d.endpoint != device.endpoint)
        .count();
    if others >= radmfa_store::MAX_PUSH_DEVICES {
        return Err(AdminError::Invalid(format!(
            "user {user:?} has {others} devices already (at most {}): remove one first",
            radmfa_store::MAX_PUSH_DEVICES
        )));
    }
    let view = DeviceView::new(&device);
    ctx.store.update_user(user, |u| {
        u.push_devices.retain(|d| d.endpoint != device.endpoint);
        u.push_devices.push(device.clone());
    })?;
    Ok(view)
}

/// Removes the device `id` of `user`; an unknown id is an error.
pub fn remove(ctx: Ctx<'_>, user: String, id: String) -> Result<DeviceRemoved, AdminError> {
    let u = ctx
        .store
        .get_user(&user)?
        .ok_or_else(|| user_not_found(&user))?;
    if !u.push_devices.iter().any(|d| d.id == id) {
        return Err(AdminError::Store(radmfa_store::StoreError::NotFound {
            what: "device",
            name: id,
        }));
    }
    ctx.store
        .update_user(&user, |u| u.push_devices.retain(|d| d.id != id))?;
    Ok(DeviceRemoved { user, removed: id })
}
