// Package platform is the one definition of a shim's platform and of the rule that picks an
// artifact for a node. The node-installer uses it to choose an OCI index entry for the machine it
// runs on; the manager uses it to decide, from a node's status.nodeInfo, whether a Shim's source
// offers anything for that node. Both sides calling the same Normalize and Match is what keeps them
// from disagreeing about aliases (x86_64, aarch64, armhf) and arm variants.
package platform
