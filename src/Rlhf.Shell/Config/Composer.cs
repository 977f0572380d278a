using Rlhf.Settings;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Shell.Config;

/// <summary>
/// Reads a config file and composes its <c>defaults:</c> list (ROLL/Hydra style): every entry is a file relative to
/// the including one, merged in order, then the file itself on top (or where <c>_self_</c> stands). <c>name@_here_</c>
/// (or no package) merges at the root, <c>name@a.b</c> under <c>a.b</c>.
/// </summary>
internal sealed class Composer(NodeSources sources, List<ConfigError> errors)
{
    /// <summary>How a path reads in messages: relative to the working directory unless the user gave an absolute one.</summary>
    public bool AbsoluteDisplay { get; init; }

    /// <summary>The display form of a full path.</summary>
    public string Display(string fullPath) =>
        AbsoluteDisplay ? fullPath : Path.GetRelativePath(Environment.CurrentDirectory, fullPath).Replace('\\', '/');

    /// <summary>Parses YAML text into the root mapping of its (single) document, registering every node's position.</summary>
    public YamlMappingNode? Parse(string text, string display)
    {
        if (text.Length > ConfigLimits.MaxFileBytes)
        {
            errors.Add(new ConfigError(display, 1, 1, "", $"the text is longer than {ConfigLimits.MaxFileBytes / (1024 * 1024)} MiB, the most a config may hold"));
            return null;
        }
        // Limits first, on the event stream: no tree is built for a document that is too deep, too long or an alias bomb.
        if (ConfigLimits.Scan(text) is var (limitLine, limitColumn, limit))
        {
            errors.Add(new ConfigError(display, limitLine, limitColumn, "", "config too large: " + limit));
            return null;
        }
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var message = YamlMessage(e);
            // YamlDotNet points at the scalar it was reading; a tab in the indentation is more useful.
            var (line, column) = message.Contains("tab character", StringComparison.Ordinal) && FirstIndentTab(text) is { } tab
                ? tab : ((int)e.Start.Line, (int)e.Start.Column);
            errors.Add(new ConfigError(display, line, column, "", "invalid YAML: " + message));
            return null;
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner gives up without a position when the text ends inside a flow collection.
            var (line, column, what) = Unclosed(text);
            errors.Add(new ConfigError(display, line, column, "", $"invalid YAML: {what} is never closed"));
            return null;
        }
        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode;
            errors.Add(new ConfigError(display, (int)second.Start.Line, (int)second.Start.Column, "", "a config file holds one YAML document, found a second"));
            return null;
        }
        if (stream.Documents.Count == 0 || SettingsBinding.IsNull(stream.Documents[0].RootNode)) return new YamlMappingNode();
        var root = stream.Documents[0].RootNode;
        sources.AddTree(root, display);
        if (root is YamlMappingNode m) return m;
        errors.Add(new ConfigError(display, (int)root.Start.Line, (int)root.Start.Column, "", $"the top level must be a mapping of sections, got {SettingsBinding.Describe(root)}"));
        return null;
    }

    /// <summary>1-based position of the first tab used for indentation, if any.</summary>
    private static (int, int)? FirstIndentTab(string text)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var indent = lines[i].Length - lines[i].TrimStart(' ', '\t').Length;
            var tab = lines[i].IndexOf('\t', 0, indent);
            if (tab >= 0) return (i + 1, tab + 1);
        }
        return null;
    }

    /// <summary>The outermost '[' or '{' (or the quote) left open at the end of the text, for YAML the parser gave up on.</summary>
    private static (int Line, int Column, string What) Unclosed(string text)
    {
        var open = new Stack<(int Line, int Column, char C)>();
        (int Line, int Column, char C)? quote = null;
        int line = 1, column = 0;
        var comment = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            column++;
            if (c == '\n') { line++; column = 0; comment = false; continue; }
            if (comment) continue;
            if (quote is { } q)
            {
                if (c == q.C) quote = null;
                continue;
            }
            if (c == '#' && (i == 0 || char.IsWhiteSpace(text[i - 1]))) comment = true;
            else if (c is '"' or '\'' && open.Count > 0) quote = (line, column, c);
            else if (c is '[' or '{') open.Push((line, column, c));
            else if (c is ']' or '}' && open.Count > 0) open.Pop();
        }
        if (quote is { } unclosedQuote) return (unclosedQuote.Line, unclosedQuote.Column, $"the quote {unclosedQuote.C}");
        if (open.Count > 0)
        {
            var outer = open.Last();
            return (outer.Line, outer.Column, $"'{outer.C}'");
        }
        return (line, column + 1, "a flow collection");
    }

    /// <summary>YamlDotNet's message without its "(Line: …)" prefix; the position is reported separately.</summary>
    public static string YamlMessage(YamlException e)
    {
        var m = e.InnerException is { } inner && e.Message.Contains("Duplicate key", StringComparison.Ordinal) ? inner.Message : e.Message;
        var i = m.IndexOf("): ", StringComparison.Ordinal);
        m = m.StartsWith("(Line", StringComparison.Ordinal) && i >= 0 ? m[(i + 3)..] : m;
        return m.TrimEnd('.');
    }

    /// <summary>Reads and composes a file; <paramref name="chain"/> holds the files being composed, to catch cycles.</summary>
    public YamlMappingNode? Compose(string fullPath, List<string> chain)
    {
        var display = Display(fullPath);
        if (ConfigLimits.ReadText(fullPath, out var failure) is not { } text)
        {
            var (line, column, message) = failure!.Value;
            errors.Add(new ConfigError(display, line, column, "", message));
            return null;
        }
        return ComposeText(text, fullPath, display, chain);
    }

    /// <summary>Composes YAML text as if it were the file <paramref name="fullPath"/> (includes resolve next to it).</summary>
    public YamlMappingNode? ComposeText(string text, string fullPath, string display, List<string> chain)
    {
        var self = Parse(text, display);
        if (self is null) return null;
        chain.Add(fullPath);
        try
        {
            return ComposeDefaults(self, fullPath, display, chain);
        }
        finally
        {
            chain.RemoveAt(chain.Count - 1);
        }
    }

    private YamlMappingNode ComposeDefaults(YamlMappingNode self, string fullPath, string display, List<string> chain)
    {
        var defaults = YamlTree.Remove(self, "defaults");
        if (defaults is null || SettingsBinding.IsNull(defaults)) return self;
        if (defaults is not YamlSequenceNode seq)
        {
            errors.Add(Error(defaults, "defaults", $"expected a list of files such as [zero/zero3@_here_], got {SettingsBinding.Describe(defaults)}"));
            return self;
        }
        var result = new YamlMappingNode();
        sources.Set(result, sources.Locate(self));
        var selfMerged = false;
        var index = 0;
        foreach (var entry in seq.Children)
        {
            var path = $"defaults[{index++}]";
            string? spec = entry switch
            {
                YamlScalarNode { Value: { Length: > 0 } v } => v,
                YamlMappingNode { Children.Count: 1 } m when m.Children.First() is { Key: YamlScalarNode { Value: { } g }, Value: YamlScalarNode { Value: { } n } } => $"{g}/{n}",
                _ => null,
            };
            if (spec is null)
            {
                errors.Add(Error(entry, path, $"a defaults entry is a file such as zero/zero3 or zero/zero3@_here_, got {SettingsBinding.Describe(entry)}"));
                continue;
            }
            if (spec == "_self_")
            {
                YamlTree.MergeInto(result, self);
                selfMerged = true;
                continue;
            }
            var at = spec.IndexOf('@');
            var name = at < 0 ? spec : spec[..at];
            var package = at < 0 ? "_here_" : spec[(at + 1)..];
            var dir = Path.GetDirectoryName(fullPath) ?? ".";
            var candidates = new[] { name, name + ".yaml", name + ".yml" }.Select(c => Path.GetFullPath(Path.Combine(dir, c)));
            var found = candidates.FirstOrDefault(c => File.Exists(c));
            // Hydra's search path: the including file's folder, then the installation's configs (the built-in
            // templates), so ROLL's `../config/deepspeed_zero3@_here_` resolves wherever the config was copied to.
            if (found is null && BuiltIn(name) is var (builtInPath, builtInText))
            {
                if (chain.Contains(builtInPath))
                {
                    errors.Add(Error(entry, path, $"cyclic defaults: {string.Join(" → ", chain.Skip(chain.IndexOf(builtInPath)).Append(builtInPath).Select(f => Path.GetFileName(f)))}"));
                    continue;
                }
                Merge(ComposeText(builtInText, builtInPath, BuiltInDisplay + builtInPath[BuiltInRoot.Length..], chain));
                continue;
            }
            if (found is null)
            {
                errors.Add(Error(entry, path, $"cannot find '{name}' (looked for {Display(Path.GetFullPath(Path.Combine(dir, name + ".yaml")))}){Suggestion(dir, name)}"));
                continue;
            }
            if (chain.Contains(found))
            {
                var cycle = chain.Skip(chain.IndexOf(found)).Append(found).Select(f => Path.GetFileName(f));
                errors.Add(Error(entry, path, $"cyclic defaults: {string.Join(" → ", cycle)}"));
                continue;
            }
            Merge(Compose(found, chain));

            void Merge(YamlMappingNode? included)
            {
                if (included is null) return;
                if (package is "_here_" or "_global_" or "") YamlTree.MergeInto(result, included);
                else
                {
                    var wrapped = included;
                    foreach (var part in package.Split('.').Reverse())
                    {
                        var outer = new YamlMappingNode();
                        sources.Set(outer, sources.Locate(entry));
                        var key = new YamlScalarNode(part);
                        sources.Set(key, sources.Locate(entry));
                        outer.Children.Add(key, wrapped);
                        wrapped = outer;
                    }
                    YamlTree.MergeInto(result, wrapped);
                }
            }
        }
        if (!selfMerged) YamlTree.MergeInto(result, self);
        return result;
    }

    /// <summary>Where the built-in templates seem to live (a path no file system has), and how messages name it.</summary>
    private static readonly string BuiltInRoot = Path.GetFullPath(Path.Combine(Path.GetTempPath(), "<built-in>", "configs"));

    private const string BuiltInDisplay = "<built-in>/configs";

    /// <summary>The built-in template an include names by its last path part (configs/zero/NAME.yaml), if there is one.</summary>
    private static (string Path, string Text)? BuiltIn(string name)
    {
        var stem = Path.GetFileName(name.Replace('\\', '/'));
        foreach (var ext in new[] { ".yaml", ".yml" })
            if (stem.EndsWith(ext, StringComparison.Ordinal)) stem = stem[..^ext.Length];
        using var stream = typeof(Composer).Assembly.GetManifestResourceStream($"configs/zero/{stem}.yaml");
        if (stream is null) return null;
        using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
        return (Path.Combine(BuiltInRoot, "zero", stem + ".yaml"), reader.ReadToEnd());
    }

    private string Suggestion(string dir, string name)
    {
        var sub = Path.GetDirectoryName(name) ?? "";
        var searchDir = Path.Combine(dir, sub);
        if (!Directory.Exists(searchDir)) return "";
        var stems = Directory.EnumerateFiles(searchDir)
            .Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
            .Select(f => Path.GetFileNameWithoutExtension(f))
            .ToList();
        var hint = SettingsBinding.Suggest(Path.GetFileName(name), stems);
        return hint is null ? "" : $"; did you mean '{(sub.Length == 0 ? hint : sub.Replace('\\', '/') + "/" + hint)}'?";
    }

    private ConfigError Error(YamlNode node, string path, string message)
    {
        var pos = sources.Locate(node);
        return new ConfigError(pos.File, pos.Line, pos.Column, path, message);
    }
}
