//! `swarmgate check <compose-or-stack.yml>`: runs the Docker provider's label function offline on a
//! compose file (filled in below).
