using Rlhf.Settings;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Shell.Config;

/// <summary>
/// Command-line overrides <c>key.sub=value</c> (Hydra style; a leading <c>+</c> is accepted). The value is read as YAML,
/// so <c>[0,1]</c> is a list and <c>3e-6</c> a number. Positions read <c>&lt;command line&gt;:N:C</c>: argument N, column C.
/// </summary>
internal static class Overrides
{
    /// <summary>The file name overrides report in errors.</summary>
    public const string Source = "<command line>";

    /// <summary>Applies every override to the tree, in order, collecting errors.</summary>
    public static void Apply(YamlMappingNode root, IReadOnlyList<string> overrides, NodeSources sources, List<ConfigError> errors)
    {
        if (overrides.Count > ConfigLimits.MaxOverrides)
        {
            errors.Add(new ConfigError(Source, ConfigLimits.MaxOverrides + 1, 1, "", $"more than {ConfigLimits.MaxOverrides} overrides"));
            return;
        }
        for (var n = 0; n < overrides.Count; n++)
        {
            var arg = overrides[n];
            var line = n + 1;
            if (arg.Length > ConfigLimits.MaxOverrideChars)
            {
                errors.Add(new ConfigError(Source, line, 1, "", $"override of {arg.Length} characters; the most is {ConfigLimits.MaxOverrideChars}"));
                continue;
            }
            var text = arg.StartsWith('+') ? arg[1..] : arg;
            var shift = arg.Length - text.Length;
            var eq = text.IndexOf('=');
            if (eq <= 0)
            {
                errors.Add(new ConfigError(Source, line, 1, "", $"override '{arg}' must look like key.sub=value"));
                continue;
            }
            var key = text[..eq].Trim();
            var parts = key.Split('.');
            if (parts.Any(p => p.Length == 0 || p.Any(char.IsWhiteSpace)))
            {
                errors.Add(new ConfigError(Source, line, 1 + shift, key, $"override '{arg}' has a malformed key path"));
                continue;
            }
            var valueText = text[(eq + 1)..];
            var valueColumn = shift + eq + 2;
            YamlNode value;
            if (valueText.Trim().Length == 0) value = new YamlScalarNode("") { Style = ScalarStyle.Plain };
            else if (ConfigLimits.Scan(valueText) is var (_, limitColumn, limit))
            {
                errors.Add(new ConfigError(Source, line, valueColumn + limitColumn - 1, key, "override value too large: " + limit));
                continue;
            }
            else
            {
                var stream = new YamlStream();
                try
                {
                    stream.Load(new StringReader(valueText));
                }
                catch (YamlException e)
                {
                    errors.Add(new ConfigError(Source, line, valueColumn + (int)e.Start.Column - 1, key, "invalid YAML value: " + Composer.YamlMessage(e)));
                    continue;
                }
                // "#1" is a YAML comment (no document); "1\n---\n2" holds two: neither is one value.
                if (stream.Documents.Count != 1)
                {
                    errors.Add(new ConfigError(Source, line, valueColumn, key, stream.Documents.Count == 0
                        ? $"override value '{valueText}' holds no YAML value (a '#' starts a comment: quote the value)"
                        : $"override value holds {stream.Documents.Count} YAML documents, expected one value"));
                    continue;
                }
                value = stream.Documents[0].RootNode;
            }
            foreach (var node in value.AllNodes)
                sources.Set(node, new SourcePosition(Source, line, valueColumn + Math.Max(0, (int)node.Start.Column - 1)));

            var map = root;
            var failed = false;
            for (var i = 0; i < parts.Length - 1; i++)
            {
                var (_, child) = YamlTree.Find(map, parts[i]);
                if (child is null || SettingsBinding.IsNull(child))
                {
                    var made = new YamlMappingNode();
                    var madeKey = new YamlScalarNode(parts[i]);
                    sources.Set(made, new SourcePosition(Source, line, 1 + shift));
                    sources.Set(madeKey, new SourcePosition(Source, line, 1 + shift));
                    YamlTree.Set(map, madeKey, made);
                    map = made;
                }
                else if (child is YamlMappingNode m) map = m;
                else
                {
                    errors.Add(new ConfigError(Source, line, 1 + shift, key, $"cannot set '{key}': '{string.Join(".", parts.Take(i + 1))}' is {SettingsBinding.Describe(child)}, not a section"));
                    failed = true;
                    break;
                }
            }
            if (failed) continue;
            var keyNode = new YamlScalarNode(parts[^1]);
            sources.Set(keyNode, new SourcePosition(Source, line, 1 + shift));
            YamlTree.Set(map, keyNode, value);
        }
    }
}
