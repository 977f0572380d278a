using Rlhf.Shell.Config;

namespace Rlhf.Cli.Tests;

/// <summary>Every command, given bad input, ends in one line on stderr naming the command and the problem, with a non-zero exit code.</summary>
public class CommandErrorTests
{
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string[] Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    internal static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "rlhf-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    // One line, starting with the command, containing the expected words, and no stack trace.
    private static void AssertOneLine(string err, string command, string expected)
    {
        var lines = Lines(err);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got {lines.Length}:\n{err}");
        Assert.StartsWith(command + ": ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", err);
        Assert.DoesNotContain("Unhandled exception", err);
    }

    [Theory]
    [InlineData("launch --nproc-per-node 0 -- true", "--nproc-per-node must be at least 1, got 0")]
    [InlineData("launch --nproc-per-node -3 -- true", "--nproc-per-node must be at least 1, got -3")]
    [InlineData("launch --nnodes 0 -- true", "--nnodes must be at least 1, got 0")]
    [InlineData("launch --nnodes 2 --node-rank 2 -- true", "--node-rank 2 is outside --nnodes 2")]
    [InlineData("launch --node-rank -1 -- true", "--node-rank -1 is outside --nnodes 1")]
    [InlineData("launch --master-port 70000 -- true", "--master-port must be a TCP port from 1 to 65535, got 70000")]
    [InlineData("launch --master-port 0 -- true", "--master-port must be a TCP port from 1 to 65535, got 0")]
    [InlineData("launch --master-addr 999.1.1.1 -- true", "--master-addr '999.1.1.1' is not a valid IP address or host name")]
    [InlineData("launch --master-addr 10.1 -- true", "--master-addr '10.1' is not a valid address")]
    [InlineData("launch --master-addr bad!addr -- true", "--master-addr 'bad!addr' is not a valid IP address or host name")]
    [InlineData("launch --grace-period -1 -- true", "--grace-period must be from 0 to 86400 seconds, got -1")]
    [InlineData("launch --max-restarts -1 -- true", "--max-restarts must be from 0 to 1000, got -1")]
    [InlineData("launch --max-restarts 1001 -- true", "--max-restarts must be from 0 to 1000, got 1001")]
    [InlineData("launch -- /no/such/program", "worker program '/no/such/program' does not exist")]
    [InlineData("launch -- no-such-program-rlhf-test", "worker program 'no-such-program-rlhf-test' was not found on PATH")]
    [InlineData("launch -- /tmp", "worker program '/tmp' is a directory, not a program")]
    public void Launch_option_errors_are_one_line_before_any_worker_starts(string args, string expected)
    {
        var (code, output, err) = Run(args.Split(' '));
        Assert.Equal(Program.FailureExitCode, code);
        Assert.Equal("", output);
        AssertOneLine(err, "rlhf launch", expected);
    }

    [Fact]
    public void A_worker_program_that_is_not_executable_is_named()
    {
        var script = Path.Combine(TempDir(), "worker.sh");
        File.WriteAllText(script, "echo hi\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var (code, _, err) = Run("launch", "--", script);
        Assert.Equal(Program.FailureExitCode, code);
        AssertOneLine(err, "rlhf launch", $"worker program '{script}' is not executable");
    }

    [Fact]
    public void A_bad_rendezvous_variable_is_named()
    {
        Environment.SetEnvironmentVariable("PET_NNODES", "two");
        try
        {
            var (code, _, err) = Run("launch", "--", "true");
            Assert.Equal(Program.FailureExitCode, code);
            AssertOneLine(err, "rlhf launch", "environment variable PET_NNODES=two is not an integer");
        }
        finally
        {
            Environment.SetEnvironmentVariable("PET_NNODES", null);
        }
    }

    [Theory]
    [InlineData("launch --nproc-per-node abc -- true", "rlhf launch", "--nproc-per-node: expected an integer, got 'abc'")]
    [InlineData("launch --master-port 1.5 -- true", "rlhf launch", "--master-port: expected an integer, got '1.5'")]
    [InlineData("launch", "rlhf launch", "Required argument missing")]
    [InlineData("frobnicate", "rlhf", "'frobnicate'")]
    [InlineData("config show", "rlhf config show", "Required argument missing")]
    [InlineData("checkpoint consolidate /tmp", "rlhf checkpoint consolidate", "--output")]
    [InlineData("checkpoint consolidate /tmp --output /tmp/x --dtype int8", "rlhf checkpoint consolidate", "int8")]
    [InlineData("doctor --steps many", "rlhf doctor", "--steps: expected an integer, got 'many'")]
    public void Command_lines_that_do_not_parse_are_one_line_with_the_usage_exit_code(string args, string command, string expected)
    {
        var (code, output, err) = Run(args.Split(' '));
        Assert.Equal(Program.UsageExitCode, code);
        Assert.Equal("", output);
        AssertOneLine(err, command, expected);
        Assert.EndsWith($"(see '{command} --help')", Lines(err)[0]);
    }

    [Fact]
    public void Consolidating_a_missing_directory_names_it()
    {
        var missing = Path.Combine(TempDir(), "nope");
        var (code, _, err) = Run("checkpoint", "consolidate", missing, "--output", Path.Combine(TempDir(), "hf"));
        Assert.Equal(Program.FailureExitCode, code);
        AssertOneLine(err, "rlhf checkpoint consolidate", $"{missing}: no such checkpoint directory");
    }

    [Fact]
    public void Consolidating_a_directory_that_is_not_a_checkpoint_says_so()
    {
        var dir = TempDir();
        var (code, _, err) = Run("checkpoint", "consolidate", dir, "--output", Path.Combine(TempDir(), "hf"));
        Assert.Equal(Program.FailureExitCode, code);
        AssertOneLine(err, "rlhf checkpoint consolidate", $"{Path.Combine(dir, "latest")}: no 'latest' file: not a checkpoint directory");
    }

    [Fact]
    public void Consolidating_with_a_config_source_without_config_json_says_so()
    {
        var dir = TempDir();
        var from = TempDir();
        var (code, _, err) = Run("checkpoint", "consolidate", dir, "--output", Path.Combine(TempDir(), "hf"), "--config-from", from);
        Assert.Equal(Program.FailureExitCode, code);
        AssertOneLine(err, "rlhf checkpoint consolidate", $"--config-from {from}: no config.json there");
    }

    [Fact]
    public void Consolidating_a_checkpoint_whose_state_is_garbage_names_the_file()
    {
        var dir = TempDir();
        File.WriteAllText(Path.Combine(dir, "latest"), "global_step1");
        Directory.CreateDirectory(Path.Combine(dir, "global_step1"));
        File.WriteAllText(Path.Combine(dir, "global_step1", "engine_state.json"), "{not json");
        var (code, _, err) = Run("checkpoint", "consolidate", dir, "--output", Path.Combine(TempDir(), "hf"));
        Assert.Equal(Program.FailureExitCode, code);
        Assert.DoesNotContain("   at ", err);
        Assert.StartsWith("rlhf checkpoint consolidate: ", err);
    }

    [Fact]
    public void Doctor_with_zero_steps_is_one_line()
    {
        var (code, _, err) = Run("doctor", "--steps", "0");
        Assert.Equal(Program.FailureExitCode, code);
        AssertOneLine(err, "rlhf doctor", "--steps must be at least 1, got 0");
    }

    [Theory]
    [InlineData("training.seed=#1", "training.seed: override value '#1' holds no YAML value")]
    [InlineData("training.seed=abc", "training.seed: expected an integer")]
    [InlineData("training.seed", "must look like key.sub=value")]
    [InlineData("training..seed=1", "malformed key path")]
    public void Config_show_with_a_bad_override_names_it_and_ends_in_one_summary_line(string over, string expected)
    {
        var (code, output, err) = Run("config", "show", Path.Combine(RepoRoot, "configs", "quickstart.yaml"), over);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        var lines = Lines(err);
        Assert.Contains(expected, lines[0]);
        Assert.StartsWith("<command line>:1:", lines[0]);
        Assert.Matches(@"^\d+ errors? in .*quickstart\.yaml$", lines[^1]);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Config_show_of_a_missing_file_names_it()
    {
        var missing = Path.Combine(TempDir(), "missing.yaml");
        var (code, _, err) = Run("config", "show", missing);
        Assert.Equal(1, code);
        Assert.Contains("missing.yaml:1:1: config file not found", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Config_docs_to_an_unwritable_place_is_one_line()
    {
        var file = Path.Combine(TempDir(), "a-file");
        File.WriteAllText(file, "");
        var (code, _, err) = Run("config", "docs", "--out", Path.Combine(file, "config.md"));
        Assert.Equal(Program.FailureExitCode, code);
        AssertOneLine(err, "rlhf config docs", file);
    }

    [Fact]
    public void Show_prints_yaml_that_loads_back_and_errors_go_to_stderr_with_exit_code_1()
    {
        var dir = TempDir();
        var good = Path.Combine(dir, "good.yaml");
        File.WriteAllText(good, "training: {algorithm: grpo, total_episodes: 16}\ndata: {task: reverse}\n");
        var (code, output, err) = Run("config", "show", good, "grpo.beta=0.04");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        var shown = ConfigLoader.LoadText(output, "shown.yaml").Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        Assert.Equal(0.04, shown.Grpo.Beta);
        Assert.Equal(8L, shown.Generation.N);

        File.WriteAllText(good, "training: {algorithm: grpo, total_episodes: 16}\ndata: {task: reverse}\ngrpo: {bta: 1}\n");
        (code, output, err) = Run("config", "show", good);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Contains("good.yaml:3:8: grpo.bta: unknown key 'bta'; did you mean 'beta'?", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Docs_command_writes_the_reference()
    {
        var path = Path.Combine(TempDir(), "sub", "config.md");
        var (code, _, _) = Run("config", "docs", "--out", path);
        Assert.Equal(0, code);
        Assert.Equal(ConfigDocs.Render(), File.ReadAllText(path));
    }

    [Fact]
    public void Unexpected_exceptions_are_shown_with_their_type_and_input_errors_without()
    {
        Assert.Equal("no such thing", CliErrors.Describe(new IOException("no such thing")));
        Assert.Equal("bad value", CliErrors.Describe(new AggregateException(new ArgumentException("bad value"))));
        var bug = CliErrors.Describe(new NullReferenceException("oops"));
        Assert.StartsWith("NullReferenceException: oops", bug);
        Assert.Contains("RLHF_DEBUG=1", bug);
    }

    internal static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rlhf.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Rlhf.sln not found above " + AppContext.BaseDirectory);
    }
}
