using System.Runtime.CompilerServices;

// The multi-process engine tests' worker drives the engine's float64 reference mode (ZeroEngine's internal constructor).
[assembly: InternalsVisibleTo("Rlhf.Engine.Worker")]
