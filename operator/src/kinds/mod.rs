//! The mirrored kinds' mappings between custom resources and control-plane objects.

mod group;
mod policy;
mod resource;
