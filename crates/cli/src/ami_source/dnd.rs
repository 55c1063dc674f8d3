//! An extension's DND on the PBX, read and set through AMI the way FreePBX
//! does it (AMI-FACTS §10–11):
//!
//! - on: astdb `DND/<ext>` = `YES` (`DBPut`), then the custom device
//!   `Custom:DND<ext>` = `BUSY` (`Setvar DEVICE_STATE(...)`, which raises
//!   the device-state change that phones' BLF keys and our source see), and
//!   the same for `Custom:DEVDND<device>` of each device in astdb
//!   `AMPUSER/<ext>/device`;
//! - off: `DBDel DND/<ext>`, the devices `UNAVAILABLE` (FreePBX ≥ 13).
//!
//! The plain Asterisk variant (`AMI_DND=devstate`) sets only
//! `Custom:DND<ext>`: `BUSY` or `NOT_INUSE`.

use ami::driver::{AmiHandle, DriverError};
use ami::{Action, DeviceState};

use super::DndScheme;

/// Setting or reading DND failed.
#[derive(Debug, thiserror::Error)]
pub enum DndError {
    /// The connection failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The PBX refused an action (write permission: `system` for astdb,
    /// `call` for device states).
    #[error(
        "the PBX refused {action}: {message} (the AMI user needs write = system,call in manager.conf)"
    )]
    Refused {
        /// The action.
        action: String,
        /// The PBX's `Message:`.
        message: String,
    },
}

/// An extension's DND as the PBX holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DndReading {
    /// astdb's flag (FreePBX scheme only).
    pub db: Option<bool>,
    /// The custom device's state (`UNKNOWN` when never set).
    pub device: DeviceState,
}

impl DndReading {
    /// Whether DND is on: the astdb flag where the scheme has one, else the
    /// custom device `BUSY`.
    pub fn is_on(&self) -> bool {
        self.db.unwrap_or(self.device == DeviceState::Busy)
    }
}

async fn checked(handle: &AmiHandle, action: Action) -> Result<ami::Response, DndError> {
    let name = action.name.clone();
    let detail = action
        .fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let response = handle.action(action).await?;
    if response.is_success() {
        Ok(response)
    } else {
        Err(DndError::Refused {
            action: format!("{name} {detail}"),
            message: response
                .text()
                .unwrap_or("no reason given")
                .trim()
                .to_owned(),
        })
    }
}

fn set_device(device: &str, state: DeviceState) -> Action {
    Action::new("Setvar")
        .field("Variable", format!("DEVICE_STATE({device})"))
        .field("Value", state.as_str())
}

/// Turns `extension`'s DND on or off.
pub async fn set_dnd(
    handle: &AmiHandle,
    scheme: &DndScheme,
    extension: &str,
    on: bool,
) -> Result<(), DndError> {
    let mut devices = vec![scheme.device(extension)];
    let off = match &scheme.db_family {
        Some(family) => {
            if on {
                checked(
                    handle,
                    Action::new("DBPut")
                        .field("Family", family)
                        .field("Key", extension)
                        .field("Val", "YES"),
                )
                .await?;
            } else {
                // FreePBX deletes the key; one already gone is off as well.
                let _ = handle
                    .action(
                        Action::new("DBDel")
                            .field("Family", family)
                            .field("Key", extension),
                    )
                    .await?;
            }
            devices.extend(
                user_devices(handle, extension)
                    .await?
                    .into_iter()
                    .map(|d| format!("Custom:DEVDND{d}")),
            );
            DeviceState::Unavailable
        }
        None => DeviceState::NotInUse,
    };
    let state = if on { DeviceState::Busy } else { off };
    for device in devices {
        checked(handle, set_device(&device, state)).await?;
    }
    Ok(())
}

/// FreePBX's devices of a user (astdb `AMPUSER/<ext>/device`, `&`-separated).
async fn user_devices(handle: &AmiHandle, extension: &str) -> Result<Vec<String>, DndError> {
    let list = handle
        .list(Action::db_get("AMPUSER", format!("{extension}/device")))
        .await?;
    Ok(list
        .items
        .first()
        .and_then(|i| i.get("Val"))
        .map(|v| {
            v.split('&')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// Reads `extension`'s DND.
pub async fn read_dnd(
    handle: &AmiHandle,
    scheme: &DndScheme,
    extension: &str,
) -> Result<DndReading, DndError> {
    let db = match &scheme.db_family {
        Some(family) => {
            let flags = super::read_dnd_flags(handle, &[extension.to_owned()], family).await?;
            flags.first().map(|(_, on)| *on)
        }
        None => None,
    };
    let response = checked(
        handle,
        Action::new("Getvar").field(
            "Variable",
            format!("DEVICE_STATE({})", scheme.device(extension)),
        ),
    )
    .await?;
    let device = DeviceState::from_name(response.get("Value").unwrap_or_default());
    Ok(DndReading { db, device })
}
