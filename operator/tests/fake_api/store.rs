//! The fake API server's object store: resourceVersion, generation, status subresource,
//! finalizers and deletionTimestamp, and the event history that watches replay.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A collection: API path prefix (`api/v1`, `apis/gate.dev/v1alpha1`) and plural.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvr {
    pub prefix: String,
    pub plural: String,
}

/// What the server knows about a kind.
#[derive(Clone, Debug)]
pub struct KindInfo {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// Writes to the main endpoint ignore `.status`; `/status` writes only change `.status`.
    pub status_subresource: bool,
    /// Namespaced objects live under `namespaces/NS/`; cluster-scoped ones only outside it.
    pub namespaced: bool,
}

/// The known kinds (anything else is 404, like a cluster without the CRD).
pub fn kind_info(gvr: &Gvr) -> Option<KindInfo> {
    let (kind, api_version, status_subresource) = match (gvr.prefix.as_str(), gvr.plural.as_str()) {
        ("apis/gate.dev/v1alpha1", "resources") => ("Resource", "gate.dev/v1alpha1", true),
        ("apis/gate.dev/v1alpha1", "policies") => ("Policy", "gate.dev/v1alpha1", true),
        ("apis/gate.dev/v1alpha1", "groups") => ("Group", "gate.dev/v1alpha1", true),
        ("apis/gate.dev/v1alpha1", "accessrequests") => {
            ("AccessRequest", "gate.dev/v1alpha1", true)
        }
        ("apis/coordination.k8s.io/v1", "leases") => ("Lease", "coordination.k8s.io/v1", false),
        ("apis/events.k8s.io/v1", "events") => ("Event", "events.k8s.io/v1", false),
        ("api/v1", "events") => ("Event", "v1", false),
        ("api/v1", "configmaps") => ("ConfigMap", "v1", false),
        ("api/v1", "secrets") => ("Secret", "v1", false),
        ("apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations") => {
            return Some(KindInfo {
                kind: "MutatingWebhookConfiguration",
                api_version: "admissionregistration.k8s.io/v1",
                status_subresource: false,
                namespaced: false,
            });
        }
        _ => return None,
    };
    Some(KindInfo {
        kind,
        api_version,
        status_subresource,
        namespaced: true,
    })
}

/// Why a write was refused: HTTP code, Kubernetes reason, message.
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

pub fn refuse(code: u16, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason,
        message: message.into(),
    }
}

/// One change, as watches report it.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub gvr: Gvr,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
}

pub type Key = (Gvr, String, String);

/// All objects, the change history and the live feed.
pub struct Store {
    pub objects: BTreeMap<Key, Value>,
    pub history: Vec<Change>,
    pub feed: broadcast::Sender<Change>,
    rv: u64,
}

static UID: AtomicU64 = AtomicU64::new(1);

impl Store {
    pub fn new() -> Self {
        Self {
            objects: BTreeMap::new(),
            history: Vec::new(),
            feed: broadcast::channel(1024).0,
            rv: 0,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn record(&mut self, gvr: &Gvr, namespace: &str, kind: &'static str, object: &Value) {
        let change = Change {
            rv: self.rv,
            gvr: gvr.clone(),
            namespace: namespace.to_owned(),
            kind,
            object: object.clone(),
        };
        self.history.push(change.clone());
        let _ = self.feed.send(change);
    }

    fn bump(&mut self, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    pub fn create(
        &mut self,
        gvr: &Gvr,
        info: &KindInfo,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, Refusal> {
        if !object.is_object() || !object["metadata"].is_object() {
            return Err(refuse(400, "BadRequest", "object must have metadata"));
        }
        let name = match object["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match object["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{:05x}", UID.fetch_add(1, Ordering::Relaxed)),
                None => return Err(refuse(422, "Invalid", "metadata.name: Required value")),
            },
        };
        let key = (gvr.clone(), namespace.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(refuse(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", info.kind),
            ));
        }
        if object["metadata"]
            .get("resourceVersion")
            .is_some_and(|v| !v.is_null())
        {
            return Err(refuse(
                400,
                "BadRequest",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if info.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        let meta = &mut object["metadata"];
        meta["name"] = json!(name);
        if info.namespaced {
            meta["namespace"] = json!(namespace);
        } else if let Some(meta) = meta.as_object_mut() {
            meta.remove("namespace");
        }
        meta["uid"] = json!(format!(
            "00000000-0000-4000-8000-{:012x}",
            UID.fetch_add(1, Ordering::Relaxed)
        ));
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        object["kind"] = json!(info.kind);
        object["apiVersion"] = json!(info.api_version);
        self.bump(&mut object);
        self.objects.insert(key, object.clone());
        self.record(gvr, namespace, "ADDED", &object);
        Ok(object)
    }

    /// Replace `key` with `new` (already patched or sent whole); `status` selects the subresource.
    pub fn update(
        &mut self,
        key: &Key,
        info: &KindInfo,
        mut new: Value,
        status: bool,
    ) -> Result<Value, Refusal> {
        let Some(old) = self.objects.get(key).cloned() else {
            return Err(refuse(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.kind, key.2),
            ));
        };
        let sent_rv = new["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
        if let Some(rv) = sent_rv.filter(|rv| !rv.is_empty())
            && Some(rv.as_str()) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(refuse(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    key.0.plural, key.2
                ),
            ));
        }
        if new["metadata"]["name"].as_str().is_some_and(|n| n != key.2) {
            return Err(refuse(
                400,
                "BadRequest",
                "the name of the object does not match the name in the URL",
            ));
        }
        if status {
            // The /status subresource changes .status and nothing else.
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null()
                && let Some(map) = merged.as_object_mut()
            {
                map.remove("status");
            }
            if let Some(managed) = new["metadata"].get("managedFields") {
                merged["metadata"]["managedFields"] = managed.clone();
            }
            new = merged;
        } else {
            if info.status_subresource {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            // Fields the server owns survive any write.
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "namespace",
                "name",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => new["metadata"][field] = v.clone(),
                    None => {
                        if let Some(meta) = new["metadata"].as_object_mut() {
                            meta.remove(field);
                        }
                    }
                }
            }
            let deleting = old["metadata"].get("deletionTimestamp").is_some();
            if deleting
                && !finalizers(&new)
                    .iter()
                    .all(|f| finalizers(&old).contains(f))
            {
                return Err(refuse(
                    422,
                    "Invalid",
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        new["kind"] = json!(info.kind);
        new["apiVersion"] = json!(info.api_version);
        if !status && info.status_subresource && spec_of(&old) != spec_of(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == old {
            return Ok(old); // a no-op write changes nothing, not even resourceVersion
        }
        self.bump(&mut new);
        if new["metadata"].get("deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            self.objects.remove(key);
            self.record(&key.0, &key.1, "DELETED", &new);
        } else {
            self.objects.insert(key.clone(), new.clone());
            self.record(&key.0, &key.1, "MODIFIED", &new);
        }
        Ok(new)
    }

    /// DELETE: gone at once without finalizers, else marked with `deletionTimestamp`.
    pub fn delete(&mut self, key: &Key, info: &KindInfo) -> Result<Value, Refusal> {
        let Some(mut object) = self.objects.get(key).cloned() else {
            return Err(refuse(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.kind, key.2),
            ));
        };
        if finalizers(&object).is_empty() {
            self.objects.remove(key);
            self.bump(&mut object);
            self.record(&key.0, &key.1, "DELETED", &object);
            return Ok(object);
        }
        if object["metadata"].get("deletionTimestamp").is_none() {
            object["metadata"]["deletionTimestamp"] = json!(now());
            object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            self.bump(&mut object);
            self.objects.insert(key.clone(), object.clone());
            self.record(&key.0, &key.1, "MODIFIED", &object);
        }
        Ok(object)
    }
}

/// Everything but metadata and status: what `generation` counts changes of.
fn spec_of(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        for field in ["metadata", "status", "kind", "apiVersion"] {
            map.remove(field);
        }
    }
    rest
}

pub fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 3339 UTC, seconds precision (like the API server).
pub fn now() -> String {
    gate_operator::time::now()
}
