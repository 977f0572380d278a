using Rlhf.Shell.Engine;

namespace Rlhf.Engine.Tests;

/// <summary>Rendezvous variables: torchrun first, then Slurm, then OpenMPI (pure parsing, no processes).</summary>
public class EnvironmentTests
{
    private static DistributedEnvironment From(params (string K, string V)[] kv) =>
        DistributedEnvironment.From(kv.ToDictionary(p => p.K, p => (string?)p.V));

    [Fact]
    public void Torchrun_variables_are_read_as_given()
    {
        var e = From(("RANK", "5"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "8"), ("LOCAL_WORLD_SIZE", "4"), ("MASTER_ADDR", "10.0.0.2"), ("MASTER_PORT", "1234"));
        Assert.Equal(new DistributedEnvironment(5, 1, 8, 4, "10.0.0.2", 1234, EnvironmentSource.Torchrun), e);
        Assert.Equal(1, e.NodeRank);
    }

    [Fact]
    public void Slurm_is_the_fallback_and_the_master_is_the_first_host_of_the_node_list()
    {
        var e = From(("SLURM_PROCID", "3"), ("SLURM_LOCALID", "1"), ("SLURM_NTASKS", "4"), ("SLURM_NNODES", "2"), ("SLURM_NODELIST", "gpu[07-08]"));
        Assert.Equal(new DistributedEnvironment(3, 1, 4, 2, "gpu07", DistributedEnvironment.DefaultPort, EnvironmentSource.Slurm), e);
        Assert.Equal("a", DistributedEnvironment.FirstSlurmHost("a,b[1-2]"));
        Assert.Equal("n003", DistributedEnvironment.FirstSlurmHost("n[003,005-007]"));
    }

    [Fact]
    public void OpenMpi_is_the_last_fallback_and_master_variables_still_win()
    {
        var e = From(("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_LOCAL_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "3"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "1"), ("MASTER_ADDR", "head"), ("MASTER_PORT", "4000"));
        Assert.Equal(new DistributedEnvironment(2, 0, 3, 1, "head", 4000, EnvironmentSource.OpenMpi), e);
    }

    [Fact]
    public void No_variables_means_one_process_and_inconsistent_ones_are_errors()
    {
        Assert.True(From().IsSingle);
        Assert.Throws<ArgumentException>(() => From(("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "x")));
        Assert.Throws<ArgumentException>(() => From(("RANK", "0"), ("WORLD_SIZE", "2")));
    }
}
