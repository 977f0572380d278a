using System.Security.Cryptography;
using Rlhf.Shell.Engine;

namespace Rlhf.Engine.Tests;

/// <summary>Two one-rank stage-3 checkpoints of the test MLP, saved after 2 and after 3 steps, copied per test and then damaged.</summary>
public sealed class VerifiedCheckpointFixture : IDisposable
{
    public string Dir { get; } = Results.TempDir();
    public string Step2 => Path.Combine(Dir, "a");
    public string Step3 => Path.Combine(Dir, "b");

    public VerifiedCheckpointFixture()
    {
        Cluster.RunOk(1, "checkpoint", ["mode=save", "stage=3", $"dir={Step2}", "pre=2", "post=0"], TimeSpan.FromSeconds(120));
        Cluster.RunOk(1, "checkpoint", ["mode=save", "stage=3", $"dir={Step3}", "pre=3", "post=0"], TimeSpan.FromSeconds(120));
    }

    /// <summary>A fresh copy of the step-2 checkpoint directory.</summary>
    public string Copy()
    {
        var to = Path.Combine(Dir, "copy-" + Guid.NewGuid().ToString("N")[..8]);
        foreach (var f in Directory.EnumerateFiles(Step2, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(Step2, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
        return to;
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

public class VerifiedCheckpointTests(VerifiedCheckpointFixture f) : IClassFixture<VerifiedCheckpointFixture>
{
    private static readonly string Optim = Checkpoint.OptimStatesFile(0);

    /// <summary>The one error, from the library and from <c>rlhf checkpoint consolidate</c>: a CheckpointException naming the file, one line from the CLI.</summary>
    private static void Refused(string dir, string file, string words)
    {
        var e = Assert.Throws<CheckpointException>(() =>
        {
            using var scope = Rlhf.Torch.Torch.NewScope();
            Checkpoint.ReadFull(dir);
        });
        Assert.Equal(file, e.FilePath);
        Assert.Contains(file, e.Message);
        Assert.Contains(words, e.Message);

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var rc = Rlhf.Cli.Program.Run(["checkpoint", "consolidate", dir, "--output", Path.Combine(dir, "..", "hf-" + Guid.NewGuid().ToString("N")[..6])], stdout, stderr);
        Assert.NotEqual(0, rc);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(file, lines[0]);
        Assert.DoesNotContain("   at ", stderr.ToString());
    }

    [Fact]
    public void The_manifest_records_the_tag_step_and_each_shards_size_and_sha256()
    {
        var state = Checkpoint.Verify(f.Step2);
        Assert.Equal("global_step2", state.Tag);
        Assert.Equal(2, state.GlobalSteps);
        var dir = Path.Combine(f.Step2, "global_step2");
        var onDisk = Directory.GetFiles(dir, "*.pt").Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(onDisk, state.Files!.Select(x => x.Name).ToList());
        foreach (var file in state.Files!)
        {
            var bytes = File.ReadAllBytes(Path.Combine(dir, file.Name));
            Assert.Equal(bytes.Length, file.Bytes);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), file.Sha256);
        }
    }

    [Fact]
    public void Sixty_four_flipped_bytes_in_an_optimizer_shard_name_the_shard()
    {
        var dir = f.Copy();
        var shard = Path.Combine(dir, "global_step2", Optim);
        var bytes = File.ReadAllBytes(shard);
        for (var i = 0; i < 64; i++) bytes[bytes.Length / 2 + i] ^= 0xFF;
        File.WriteAllBytes(shard, bytes);
        Refused(dir, shard, "SHA-256");
    }

    [Fact]
    public void A_truncated_shard_names_the_shard()
    {
        var dir = f.Copy();
        var shard = Path.Combine(dir, "global_step2", Optim);
        var bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..(bytes.Length / 2)]);
        Refused(dir, shard, "truncated");
    }

    [Fact]
    public void A_zero_length_shard_names_the_shard()
    {
        var dir = f.Copy();
        var shard = Path.Combine(dir, "global_step2", Checkpoint.ModelShardFile(0));
        File.WriteAllBytes(shard, []);
        Refused(dir, shard, "empty");
    }

    [Fact]
    public void A_shard_copied_from_another_step_names_the_shard()
    {
        var dir = f.Copy();
        var shard = Path.Combine(dir, "global_step2", Optim);
        File.Copy(Path.Combine(f.Step3, "global_step3", Optim), shard, overwrite: true);
        Assert.Equal(new FileInfo(Path.Combine(f.Step2, "global_step2", Optim)).Length, new FileInfo(shard).Length);   // same size: only the checksum tells
        Refused(dir, shard, "another checkpoint");
    }

    [Fact]
    public void A_manifest_copied_from_another_step_names_the_manifest()
    {
        var dir = f.Copy();
        var manifest = Path.Combine(dir, "global_step2", Checkpoint.StateFile);
        File.Copy(Path.Combine(f.Step3, "global_step3", Checkpoint.StateFile), manifest, overwrite: true);
        Refused(dir, manifest, "records tag 'global_step3'");
    }

    [Fact]
    public void A_missing_manifest_and_a_garbled_one_name_the_manifest()
    {
        var dir = f.Copy();
        var manifest = Path.Combine(dir, "global_step2", Checkpoint.StateFile);
        File.WriteAllText(manifest, "{\"Tag\": 7,");
        Refused(dir, manifest, "not a valid manifest");
        File.Delete(manifest);
        Refused(dir, manifest, "incomplete");
    }
}

/// <summary>SIGKILLs a process that saves checkpoints in a loop at random moments; the checkpoint latest names must always verify and load.</summary>
public class CheckpointKillTests
{
    [Fact]
    public void Killing_the_writer_at_random_moments_always_leaves_latest_naming_a_verified_checkpoint()
    {
        var root = Results.TempDir();
        var dir = Path.Combine(root, "ckpt");
        var rng = new Random(20261130);
        var log = new List<string>();
        try
        {
            for (var trial = 0; trial < 10; trial++)
            {
                // A fresh directory per trial, so no earlier trial's (higher-step) checkpoint can satisfy the check below.
                dir = Path.Combine(root, $"ckpt-trial{trial}");
                var delay = rng.Next(0, 700);
                long lastSaved;
                var ws = Cluster.Start(1, "checkpoint", ["mode=churn", "stage=3", $"dir={dir}"]);
                try
                {
                    Assert.True(ws[0].WaitForLine("SAVED", TimeSpan.FromSeconds(90)), "the writer never saved\n" + Cluster.Describe(ws));
                    Thread.Sleep(delay);
                    ws[0].Kill();
                    ws[0].Process.WaitForExit(10_000);
                    var saved = ws[0].Stdout.Split('\n').Where(l => l.StartsWith("SAVED ", StringComparison.Ordinal)).ToList();
                    lastSaved = long.Parse(saved[^1].Split(' ')[2]);
                    log.Add($"trial {trial}: killed {delay} ms after the first save, {saved.Count} saves reported, last {saved[^1].Trim()}");
                }
                finally
                {
                    foreach (var w in ws) w.Dispose();
                }
                var tag = Checkpoint.ReadLatest(dir);
                CheckpointState state;
                try
                {
                    using var scope = Rlhf.Torch.Torch.NewScope();
                    state = Checkpoint.ReadFull(dir).State;
                }
                catch (Exception e)
                {
                    throw new Xunit.Sdk.XunitException($"after trial {trial} latest names '{tag}', which does not load: {e.Message}\n{string.Join("\n", log)}\n{Listing(dir)}");
                }
                // Never older than the last save the test saw reported. It may be newer: the writer's stdout is read through a
                // pipe, so on a fast machine saves committed just before the kill are not yet in the captured output.
                Assert.True(state.GlobalSteps >= lastSaved,
                    $"latest is at step {state.GlobalSteps}, the last reported save at {lastSaved}\n{string.Join("\n", log)}");
            }

            // The next save cleans what the kills left behind.
            Cluster.RunOk(1, "checkpoint", ["mode=save", "stage=3", $"dir={dir}", "pre=1", "post=0"], TimeSpan.FromSeconds(120));
            var entries = new DirectoryInfo(dir).EnumerateFileSystemInfos().ToList();
            var targets = entries.Where(x => x.LinkTarget is not null).Select(x => x.LinkTarget!).ToHashSet();
            var stale = entries.Where(x => x.Name.EndsWith(".tmp", StringComparison.Ordinal) || x.Name.Contains(".old-", StringComparison.Ordinal)
                || x.Name.EndsWith(".link", StringComparison.Ordinal) || x.Name.EndsWith(".part", StringComparison.Ordinal)
                || (x.Name.StartsWith('.') && x.LinkTarget is null && !targets.Contains(x.Name))).Select(x => x.Name).ToList();
            Assert.True(stale.Count == 0, "leftovers after a clean save: " + string.Join(", ", stale) + "\n" + Listing(dir));
            Assert.Equal(1, Checkpoint.Verify(dir).GlobalSteps);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static string Listing(string dir) =>
        string.Join("\n", new DirectoryInfo(dir).EnumerateFileSystemInfos().Select(x => $"  {x.Name}{(x.LinkTarget is { } t ? " -> " + t : "")}"));
}
