// Linked into the CLI and Shell test projects: their test classes run one at a time. Several run training in-process, and Debian's OpenBLAS 0.3.21 (OpenMP build) can
// livelock when two threads of one process run multi-threaded matrix products at once: CI once saw two in-process
// trainings spin in exec_blas / sched_yield for over eight minutes. `rlhf` runs one training per process; on two cores
// the asynchronous loop's generator and trainer run one thread each (single-threaded products). With more cores both
// sides run several threads at once, which may meet the same livelock: an open risk, noted in the README.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
