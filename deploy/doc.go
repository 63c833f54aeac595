// Package deploy holds what it takes to run segeval in production, and no Go
// code: a Dataflow Flex Template (dataflow/), manifests for a Flink session
// cluster on Kubernetes with Beam's Flink job server (flink/), and nightly
// schedules for both (schedules/). See README.md.
//
// The package's tests check these files: that they parse, and that every
// flag they pass to cmd/run is one the binary defines, so that renaming a
// flag cannot silently break a deployment.
package deploy
