using System.Text;
using Rlhf.Settings;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Shell.Config;

/// <summary>
/// Resolves <c>${a.b}</c> references (OmegaConf style) in a composed tree. A value that is exactly one reference
/// becomes the referenced node (a whole section, as in <c>strategy_config: ${deepspeed_zero3}</c>); a reference inside
/// a longer string is replaced by the referenced scalar's text. <c>\${</c> writes a literal <c>${</c>. Cycles are errors.
/// A key the files leave out resolves to its schema default (<c>${training.output_dir}</c> is <c>output</c>).
/// </summary>
internal sealed class Interpolator(YamlMappingNode root, NodeSources sources, List<ConfigError> errors, IReadOnlyList<SettingsField>? schema = null)
{
    private readonly HashSet<YamlNode> _done = new(ReferenceEqualityComparer.Instance);
    private readonly List<string> _stack = [];

    /// <summary>Key paths whose value could not be resolved (binding errors there would only repeat the problem).</summary>
    public HashSet<string> FailedPaths { get; } = new(StringComparer.Ordinal);

    /// <summary>Resolves every reference in the tree, in place.</summary>
    public void Run() => Resolve(root, "");

    private static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

    private YamlNode Resolve(YamlNode node, string path)
    {
        if (_done.Contains(node)) return node;
        _stack.Add(path);
        try
        {
            switch (node)
            {
                case YamlMappingNode m:
                    _done.Add(m);
                    foreach (var key in m.Children.Keys.ToList())
                    {
                        var child = m.Children[key];
                        var name = (key as YamlScalarNode)?.Value ?? "?";
                        var resolved = Resolve(child, Join(path, name));
                        if (!ReferenceEquals(resolved, child)) m.Children[key] = resolved;
                    }
                    return m;
                case YamlSequenceNode s:
                    _done.Add(s);
                    for (var i = 0; i < s.Children.Count; i++)
                    {
                        var resolved = Resolve(s.Children[i], $"{path}[{i}]");
                        if (!ReferenceEquals(resolved, s.Children[i])) s.Children[i] = resolved;
                    }
                    return s;
                case YamlScalarNode sc when sc.Value is { } v && (v.Contains("${", StringComparison.Ordinal)):
                    var result = Interpolate(sc, v, path);
                    _done.Add(result);
                    return result;
                default:
                    _done.Add(node);
                    return node;
            }
        }
        finally
        {
            _stack.RemoveAt(_stack.Count - 1);
        }
    }

    private YamlNode Interpolate(YamlScalarNode scalar, string text, string path)
    {
        var at = sources.Locate(scalar);
        var quoted = scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted;
        ConfigError ErrorAt(int offset, string message) =>
            new(at.File, at.Line, at.Column + offset + (quoted ? 1 : 0), path, message);

        var sb = new StringBuilder();
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == '\\' && string.CompareOrdinal(text, i + 1, "${", 0, 2) == 0)
            {
                sb.Append("${");
                i += 3;
                continue;
            }
            if (string.CompareOrdinal(text, i, "${", 0, 2) != 0)
            {
                sb.Append(text[i++]);
                continue;
            }
            var close = text.IndexOf('}', i + 2);
            if (close < 0)
            {
                errors.Add(ErrorAt(i, $"bad interpolation: '{text[i..]}' has no closing '}}'"));
                FailedPaths.Add(path);
                return scalar;
            }
            var reference = text[(i + 2)..close].Trim();
            var target = Lookup(reference, i, ErrorAt, at);
            if (target is null)
            {
                FailedPaths.Add(path);
                return scalar;
            }
            var whole = i == 0 && close == text.Length - 1;
            if (whole) return target;
            if (target is not YamlScalarNode { Value: { } value })
            {
                errors.Add(ErrorAt(i, $"bad interpolation: ${{{reference}}} is {SettingsBinding.Describe(target)}, which cannot be put inside a string"));
                FailedPaths.Add(path);
                return scalar;
            }
            sb.Append(value);
            i = close + 1;
        }
        var made = new YamlScalarNode(sb.ToString()) { Style = scalar.Style };
        sources.Set(made, at);
        return made;
    }

    /// <summary>The schema default of a key path the files do not set, as a node (null when there is none).</summary>
    private YamlNode? SchemaDefault(string[] parts)
    {
        var fields = schema;
        SettingsField? field = null;
        foreach (var part in parts)
        {
            if (fields is null) return null;
            field = fields.FirstOrDefault(f => f.Key == part);
            if (field is null) return null;
            fields = field.Children?.Invoke();
        }
        if (field is null || field.Default.Length == 0 || field.Required || field.Children is not null) return null;
        YamlNode node;
        if (field.Type.StartsWith("string", StringComparison.Ordinal)) node = new YamlScalarNode(field.Default) { Style = ScalarStyle.DoubleQuoted };
        else
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(field.Default));
            node = stream.Documents[0].RootNode;
        }
        return node;
    }

    private YamlNode? Lookup(string reference, int offset, Func<int, string, ConfigError> errorAt, SourcePosition referencedAt)
    {
        if (reference.Length == 0 || reference.Split('.').Any(p => p.Length == 0))
        {
            errors.Add(errorAt(offset, $"bad interpolation: '${{{reference}}}' is not a dotted key path such as ${{training.seed}}"));
            return null;
        }
        if (_stack.Contains(reference))
        {
            var start = _stack.IndexOf(reference);
            var cycle = _stack.Skip(start).Where(p => p.Length > 0).Append(reference);
            errors.Add(errorAt(offset, $"bad interpolation: cycle {string.Join(" → ", cycle)}"));
            return null;
        }
        var parts = reference.Split('.');
        var (node, parent, missing, prefix) = YamlTree.At(root, parts);
        if (node is null && SchemaDefault(parts) is { } fallback)
        {
            foreach (var n in fallback.AllNodes) sources.Set(n, referencedAt);
            return fallback;
        }
        if (node is null)
        {
            var where = prefix.Length == 0 ? "at the top level" : $"under '{prefix}'";
            var hint = parent is null ? null : SettingsBinding.Suggest(missing, YamlTree.Keys(parent));
            errors.Add(errorAt(offset, $"bad interpolation: ${{{reference}}} does not exist: no key '{missing}' {where}" + (hint is null ? "" : $"; did you mean '{hint}'?")));
            return null;
        }
        // Resolve the target first (it may itself hold references), and store the result where it lives.
        var resolved = Resolve(node, reference);
        if (!ReferenceEquals(resolved, node))
        {
            var owner = parts.Length == 1 ? root : YamlTree.At(root, parts[..^1]).Node as YamlMappingNode;
            if (owner is not null)
            {
                var (key, _) = YamlTree.Find(owner, parts[^1]);
                if (key is not null) owner.Children[key] = resolved;
            }
        }
        return resolved;
    }
}
