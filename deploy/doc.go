// Package deploy holds what it takes to run segeval in production, and no Go
// code: a Dataflow Flex Template (dataflow/), manifests for a Flink session
// cluster on Kubernetes with Beam's Flink job server (flink/), and nightly
// schedules for both (schedules/). See README.md.
//
// capacity.json is the night the files are sized for (50,000 Cityscapes
// images in an hour) and the measured basis of README.md's capacity plan.
// The numbers in the files (Dataflow machine type and workers, Flink slots,
// parallelism, the Go worker's CPU and memory) are derived from it by hand,
// since YAML and shell cannot read it; the tests derive them again and fail
// when a file disagrees, so that changing the plan shows every number to
// change.
//
// The package's tests check these files: that they parse; that every flag
// they pass to cmd/run is one the binary defines, so that renaming a flag
// cannot silently break a deployment; that they match the sizing; that the
// nightly Dataflow job gets a name of its own each night and does not keep
// its launcher waiting; and that the nightly Flink Job does not rerun an
// evaluation that failed its gate. The scripts run against fake gcloud and
// segeval commands, which record what they are asked to do.
package deploy
