using LanguageExt;
using Rlhf.Settings;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Shell.Config;

/// <summary>
/// Loads a YAML config into typed settings: compose <c>defaults:</c>, apply command-line overrides, take the
/// <c>deepspeed_config</c> JSON as the base of the engine section, resolve <c>${…}</c>, bind and validate against the
/// schemas, then run the cross-key checks of <see cref="ConfigResolver"/>. Every error is collected; none throws.
/// </summary>
public static class ConfigLoader
{
    /// <summary>
    /// Loads, validates and resolves a config file (errors carry file:line:column and key path). ROLL keys that mean
    /// nothing here are added to <paramref name="ignored"/> (see <see cref="RollLayout"/>); with <paramref name="strict"/>
    /// each is an error instead.
    /// </summary>
    public static Validation<ConfigError, RlhfConfig> Load(string path, IEnumerable<string>? overrides = null, int? worldSize = null, bool strict = false, List<IgnoredKey>? ignored = null)
    {
        var full = Path.GetFullPath(path);
        var display = Path.IsPathRooted(path) ? full : Path.GetRelativePath(Environment.CurrentDirectory, full).Replace('\\', '/');
        var sources = new NodeSources(display);
        var errors = new List<ConfigError>();
        var composer = new Composer(sources, errors) { AbsoluteDisplay = Path.IsPathRooted(path) };
        if (!File.Exists(full))
            return Fail(new ConfigError(display, 1, 1, "", "config file not found"));
        var root = composer.Compose(full, []);
        return Finish(root, sources, composer, errors, overrides, worldSize, strict, ignored);
    }

    /// <summary>Loads YAML text as if it were the file <paramref name="fileName"/> in <paramref name="baseDirectory"/> (default: the working directory).</summary>
    public static Validation<ConfigError, RlhfConfig> LoadText(string yaml, string fileName = "<text>", IEnumerable<string>? overrides = null, int? worldSize = null, string? baseDirectory = null,
        bool strict = false, List<IgnoredKey>? ignored = null)
    {
        var sources = new NodeSources(fileName);
        var errors = new List<ConfigError>();
        var composer = new Composer(sources, errors);
        var pseudo = Path.Combine(Path.GetFullPath(baseDirectory ?? Environment.CurrentDirectory), fileName);
        var root = composer.ComposeText(yaml, pseudo, fileName, []);
        return Finish(root, sources, composer, errors, overrides, worldSize, strict, ignored);
    }

    /// <summary>
    /// Loads a file that is a fragment rather than a full config (the templates in configs/zero/) through the binder of
    /// one section, e.g. <c>LoadSection(path, DeepSpeedTemplates.Bind)</c>: composition, overrides and interpolation
    /// apply, the cross-key checks of full configs do not.
    /// </summary>
    public static Validation<ConfigError, T> LoadSection<T>(string path, Func<YamlNode?, BindContext, string, Validation<ConfigError, T>> bind, IEnumerable<string>? overrides = null)
    {
        var full = Path.GetFullPath(path);
        var display = Path.IsPathRooted(path) ? full : Path.GetRelativePath(Environment.CurrentDirectory, full).Replace('\\', '/');
        var sources = new NodeSources(display);
        var errors = new List<ConfigError>();
        var composer = new Composer(sources, errors) { AbsoluteDisplay = Path.IsPathRooted(path) };
        if (!File.Exists(full))
            return Validation<ConfigError, T>.Fail(Prelude.Seq1(new ConfigError(display, 1, 1, "", "config file not found")));
        var root = composer.Compose(full, []);
        var prepared = Prepare(root, sources, composer, errors, overrides, null, null);
        if (prepared is not var (tree, failed)) return Validation<ConfigError, T>.Fail(Prelude.Seq(Sorted(errors)));
        var bound = bind(tree, new BindContext(sources), "");
        errors.AddRange(bound.FailToSeq().Where(e => !failed.Contains(e.KeyPath)));
        return errors.Count > 0 ? Validation<ConfigError, T>.Fail(Prelude.Seq(Sorted(errors))) : bound;
    }

    private static Validation<ConfigError, RlhfConfig> Fail(params ConfigError[] errors) =>
        Validation<ConfigError, RlhfConfig>.Fail(Prelude.Seq(errors));

    /// <summary>Overrides, deepspeed_config, interpolation; null when file-level errors make binding pointless.</summary>
    private static (YamlMappingNode Root, System.Collections.Generic.HashSet<string> FailedPaths)? Prepare(
        YamlMappingNode? root, NodeSources sources, Composer composer, List<ConfigError> errors, IEnumerable<string>? overrides, IReadOnlyList<SettingsField>? schema,
        List<IgnoredKey>? ignored)
    {
        if (root is null) return null;
        Overrides.Apply(root, overrides?.ToList() ?? [], sources, errors);
        ApplyDeepSpeedConfig(root, sources, composer, errors);
        var interpolator = new Interpolator(root, sources, errors, schema);
        interpolator.Run();
        if (ignored is not null)
        {
            // After interpolation, so a kept key may still refer to an ignored one (exp_name: run-${pg_variant}); what an
            // ignored key itself failed to interpolate does not matter.
            var before = ignored.Count;
            RollLayout.Apply(root, sources, errors, ignored);
            foreach (var k in ignored.Skip(before))
                errors.RemoveAll(e => e.KeyPath == k.KeyPath || e.KeyPath.StartsWith(k.KeyPath + ".", StringComparison.Ordinal) || e.KeyPath.StartsWith(k.KeyPath + "[", StringComparison.Ordinal));
        }
        // Problems with files (syntax, includes, cycles) make binding errors noise: report those alone.
        if (errors.Any(e => e.KeyPath.StartsWith("defaults", StringComparison.Ordinal) || e.KeyPath.Length == 0 || e.KeyPath == "deepspeed_config"))
            return null;
        return (root, interpolator.FailedPaths);
    }

    private static Validation<ConfigError, RlhfConfig> Finish(
        YamlMappingNode? root, NodeSources sources, Composer composer, List<ConfigError> errors, IEnumerable<string>? overrides, int? worldSize,
        bool strict, List<IgnoredKey>? ignoredOut)
    {
        var ignored = new List<IgnoredKey>();
        Validation<ConfigError, RlhfConfig> Done(Validation<ConfigError, RlhfConfig> result)
        {
            ignoredOut?.AddRange(ignored);
            if (!strict || ignored.Count == 0) return result;
            return Fail(Sorted(ignored.Select(RollLayout.AsError).Concat(result.FailToSeq())));
        }
        if (Prepare(root, sources, composer, errors, overrides, RlhfConfig.Fields, ignored) is not var (tree, failed)) return Done(Fail(Sorted(errors)));
        CheckTrainingSection(tree, sources, errors);
        var ctx = new BindContext(sources);
        var bound = RlhfConfig.Bind(tree, ctx, "");
        var bindErrors = bound.FailToSeq().Where(e => !failed.Contains(e.KeyPath));
        errors.AddRange(bindErrors);
        if (errors.Count > 0 || bound.IsFail) return Done(Fail(Sorted(errors)));
        var settings = bound.SuccessToSeq().Head with { Defaults = EquatableList<string>.Empty, DeepspeedConfig = null };
        var resolved = ConfigResolver.Resolve(settings, ctx, worldSize, MemoryBytes(), ignored);
        return Done(resolved.IsFail ? Fail(Sorted(resolved.FailToSeq())) : resolved);
    }

    /// <summary>The memory a share such as vLLM's gpu_memory_utilization is taken of: what the runtime may use of this machine (RAM, or a container's limit).</summary>
    private static long MemoryBytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>
    /// <c>training</c> and <c>training.algorithm</c> are required, unless the config is in ROLL's layout (actor_train carries
    /// its training_args, which fill the section) or names the algorithm with ROLL's <c>adv_estimator</c>.
    /// </summary>
    private static void CheckTrainingSection(YamlMappingNode root, NodeSources sources, List<ConfigError> errors)
    {
        var rollShaped = YamlTree.Find(root, "actor_train").Value is YamlMappingNode role && YamlTree.Find(role, "training_args").Key is not null;
        if (rollShaped) return;
        var (key, training) = YamlTree.Find(root, "training");
        if (key is null)
        {
            var at = sources.Locate(root);
            errors.Add(new ConfigError(at.File, at.Line, at.Column, "training", "missing required key 'training'"));
        }
        else if (training is YamlMappingNode t && YamlTree.Find(t, "algorithm").Key is null && YamlTree.Find(root, "adv_estimator").Key is null)
        {
            var at = sources.Locate(t);
            errors.Add(new ConfigError(at.File, at.Line, at.Column, "training.algorithm", "missing required key 'algorithm'"));
        }
    }

    private static ConfigError[] Sorted(IEnumerable<ConfigError> errors) =>
        errors.Distinct().OrderBy(e => e.File, StringComparer.Ordinal).ThenBy(e => e.Line).ThenBy(e => e.Column).ToArray();

    /// <summary><c>deepspeed_config: ds.json</c>: the JSON file's keys become the base of <c>engine</c>; engine keys in YAML win.</summary>
    private static void ApplyDeepSpeedConfig(YamlMappingNode root, NodeSources sources, Composer composer, List<ConfigError> errors)
    {
        var node = YamlTree.Remove(root, "deepspeed_config");
        if (node is null || SettingsBinding.IsNull(node)) return;
        var at = sources.Locate(node);
        ConfigError Error(string message) => new(at.File, at.Line, at.Column, "deepspeed_config", message);
        if (node is not YamlScalarNode { Value: { } file })
        {
            errors.Add(Error($"expected the path of a DeepSpeed JSON file, got {SettingsBinding.Describe(node)}"));
            return;
        }
        var dir = at.File.StartsWith('<') ? Environment.CurrentDirectory : Path.GetDirectoryName(Path.GetFullPath(at.File)) ?? ".";
        var full = Path.GetFullPath(Path.Combine(dir, file));
        if (!File.Exists(full))
        {
            errors.Add(Error($"cannot find the DeepSpeed config '{file}' (looked for {composer.Display(full)})"));
            return;
        }
        if (ConfigLimits.ReadText(full, out var failure) is not { } text)
        {
            var (line, column, message) = failure!.Value;
            errors.Add(new ConfigError(composer.Display(full), line, column, "", message));
            return;
        }
        var ds = composer.Parse(text, composer.Display(full));
        if (ds is null) return;
        var (engineKey, engine) = YamlTree.Find(root, "engine");
        if (engine is YamlMappingNode em) YamlTree.MergeInto(ds, em);
        else if (engine is not null && !SettingsBinding.IsNull(engine)) return; // binding reports the wrong type of engine
        if (engineKey is not null) root.Children[engineKey] = ds;
        else
        {
            var key = new YamlScalarNode("engine");
            sources.Set(key, at);
            root.Children.Add(key, ds);
        }
    }

    /// <summary>The settings as YAML text that loads back to equal settings (every key, defaults included).</summary>
    public static string ToYaml(RlhfConfig config)
    {
        var node = config.ToYaml();
        // A loaded config is already composed: its (empty) defaults list would only be noise.
        if (YamlTree.Find(node, "defaults").Value is YamlSequenceNode { Children.Count: 0 }) YamlTree.Remove(node, "defaults");
        var stream = new YamlStream(new YamlDocument(node));
        using var writer = new StringWriter { NewLine = "\n" };
        stream.Save(writer, assignAnchors: false);
        var text = writer.ToString();
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    /// <summary>One error per line, in the compiler-like form <c>file:line:column: key: message</c>.</summary>
    public static string Format(IEnumerable<ConfigError> errors) => string.Join("\n", errors.Select(e => e.ToString()));
}
