using System.CommandLine;
using Rlhf.Shell.Config;

namespace Rlhf.Cli;

/// <summary>The <c>rlhf config</c> command: show a resolved config, write the key reference.</summary>
public static class ConfigCommands
{
    /// <summary>Default output of <c>rlhf config docs</c>.</summary>
    public const string DefaultDocsPath = "docs/config.md";

    /// <summary>Builds the <c>config</c> command with its <c>show FILE [overrides...]</c> and <c>docs [--out PATH]</c> subcommands.</summary>
    public static Command Build()
    {
        var file = new Argument<string>("file") { Description = "The YAML config to load." };
        var overrides = new Argument<string[]>("overrides") { Description = "Overrides such as training.learning_rate=1e-5.", Arity = ArgumentArity.ZeroOrMore };
        var strict = StrictOption();
        var show = new Command("show", "Print the fully resolved config (composed, overridden, interpolated, validated, defaults filled).") { file, overrides, strict };
        show.SetAction(parse => Show(parse.GetValue(file)!, parse.GetValue(overrides) ?? [], parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, parse.GetValue(strict)));

        var output = new Option<string>("--out") { Description = "Where to write the reference.", DefaultValueFactory = _ => DefaultDocsPath };
        var docs = new Command("docs", "Write the reference of every config key (type, default, description).") { output };
        docs.SetAction(parse => Docs(parse.GetValue(output) ?? DefaultDocsPath, parse.InvocationConfiguration.Output));

        return new Command("config", "Inspect and document configurations.") { show, docs };
    }

    /// <summary>The <c>--strict</c> option of <c>config show</c> and <c>train</c>: ROLL keys that mean nothing here are errors, not a warning.</summary>
    public static Option<bool> StrictOption() =>
        new("--strict") { Description = "Make ROLL keys that mean nothing here (hydra, worker_cls, track_with, LoRA, Megatron, data templates …) errors instead of one warning." };

    /// <summary>Loads a config as <c>config show</c> and <c>train</c> do: the warning listing ignored ROLL keys goes to <paramref name="error"/>.</summary>
    public static LanguageExt.Validation<Rlhf.Settings.ConfigError, Rlhf.Settings.RlhfConfig> Load(string file, IReadOnlyList<string> overrides, bool strict, TextWriter error)
    {
        var ignored = new List<IgnoredKey>();
        var loaded = ConfigLoader.Load(file, overrides, strict: strict, ignored: ignored);
        if (!strict) error.Write(RollLayout.Describe(ignored));
        return loaded;
    }

    /// <summary>Loads a config and writes it resolved to <paramref name="output"/>, or its errors to <paramref name="error"/>; returns the exit code.</summary>
    public static int Show(string file, IReadOnlyList<string> overrides, TextWriter output, TextWriter error, bool strict = false)
    {
        var loaded = Load(file, overrides, strict, error);
        return loaded.Match(
            Succ: config =>
            {
                output.Write($"# rlhf config show {file}{(overrides.Count > 0 ? " " + string.Join(" ", overrides) : "")}\n");
                output.Write(ConfigLoader.ToYaml(config));
                return 0;
            },
            Fail: errors =>
            {
                error.Write(ConfigLoader.Format(errors) + "\n");
                error.Write($"{errors.Count} error{(errors.Count == 1 ? "" : "s")} in {file}\n");
                return 1;
            });
    }

    /// <summary>Writes the key reference to <paramref name="path"/>.</summary>
    public static int Docs(string path, TextWriter output)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllText(path, ConfigDocs.Render());
        output.Write($"wrote {path}\n");
        return 0;
    }
}
