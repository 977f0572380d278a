using System.CommandLine;

namespace Rlhf.Cli;

/// <summary>The <c>rlhf</c> console program: builds the command tree, runs one command, and turns every failure into one line on stderr.</summary>
public static class Program
{
    /// <summary>Exit code of a command that failed (bad input, a missing file, a failed worker without its own code).</summary>
    public const int FailureExitCode = 1;

    /// <summary>Exit code of a command line that does not parse (unknown option, missing argument, a value of the wrong type).</summary>
    public const int UsageExitCode = 2;

    /// <summary>Builds the command tree (also used by tests).</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("rlhf: train language models from feedback (online DPO, PPO, RLOO, best-of-K, GRPO, REINFORCE++).");
        root.Subcommands.Add(DoctorCommand.Build());
        root.Subcommands.Add(ConfigCommands.Build());
        root.Subcommands.Add(LaunchCommand.Build());
        root.Subcommands.Add(CheckpointCommands.Build());
        root.Subcommands.Add(TrainCommand.Build());
        root.Subcommands.Add(QuickstartCommand.Build());
        root.Subcommands.Add(RunsCommands.Build());
        // With no subcommand, run the main job: the quickstart with its defaults.
        root.SetAction(parse => QuickstartCommand.Run(
            new Rlhf.Shell.Training.Quickstart.QuickstartOptions(QuickstartCommand.DefaultConfigDirectory(), QuickstartCommand.DefaultOutput()),
            quiet: false, parse.InvocationConfiguration.Output));
        return root;
    }

    /// <summary>
    /// Parses and runs <paramref name="args"/>, writing to <paramref name="output"/> and <paramref name="error"/>
    /// (the console by default). Whatever goes wrong ends in one line on <paramref name="error"/> naming the command
    /// and the problem, and a non-zero exit code: <see cref="UsageExitCode"/> for a command line that does not parse,
    /// <see cref="FailureExitCode"/> (or the command's own code) otherwise. Never a stack trace, unless
    /// <c>RLHF_DEBUG=1</c> asks for one.
    /// </summary>
    public static int Run(IReadOnlyList<string> args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        ParseResult parse;
        try
        {
            // No response files: an argument starting with '@' is an argument, not a file to expand.
            parse = BuildRoot().Parse(args.ToArray(), new ParserConfiguration { ResponseFileTokenReplacer = null });
        }
        catch (Exception e)
        {
            return Fail(error, "rlhf", e);
        }

        var command = CommandPath(parse);
        if (parse.Errors.Count > 0)
        {
            var what = string.Join("; ", parse.Errors.Select(e => Friendly(OneLine(e.Message))).Distinct());
            error.WriteLine($"{command}: {what} (see '{command} --help')");
            return UsageExitCode;
        }

        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return Fail(error, command, e);
        }
    }

    /// <summary>Entry point.</summary>
    public static int Main(string[] args) => Run(args);

    // "rlhf checkpoint consolidate": the words of the command that ran, for the error line.
    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(r.Command is RootCommand ? "rlhf" : r.Command.Name);
        names.Reverse();
        return string.Join(" ", names);
    }

    private static int Fail(TextWriter error, string command, Exception e)
    {
        error.WriteLine($"{command}: {CliErrors.Describe(e)}");
        if (Environment.GetEnvironmentVariable("RLHF_DEBUG") == "1") error.WriteLine(e.ToString());
        error.Flush();
        return FailureExitCode;
    }

    // System.CommandLine names .NET types ("System.Nullable`1[System.Int32]"); say what the user must type instead.
    private static string Friendly(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"^Cannot parse argument '(.*)' for (?:option|argument|command) '(.*?)' as expected type '(.*)'\.?$");
        if (!m.Success) return message;
        var type = m.Groups[3].Value;
        var expected = type.Contains("Int32") || type.Contains("Int64") ? "an integer"
            : type.Contains("Double") || type.Contains("Single") ? "a number"
            : type.Contains("Boolean") ? "true or false"
            : type;
        return $"{m.Groups[2].Value}: expected {expected}, got '{m.Groups[1].Value}'";
    }

    internal static string OneLine(string s) => string.Join(" ", s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
