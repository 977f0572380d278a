using YamlDotNet.RepresentationModel;

namespace Rlhf.Shell.Config;

/// <summary>Small operations on YAML trees: lookup by key, deep merge, dotted-path access.</summary>
internal static class YamlTree
{
    /// <summary>The key node and value of <paramref name="key"/> in a mapping, or nulls.</summary>
    public static (YamlNode? Key, YamlNode? Value) Find(YamlMappingNode map, string key)
    {
        foreach (var kv in map.Children)
            if (kv.Key is YamlScalarNode { Value: var v } && v == key) return (kv.Key, kv.Value);
        return (null, null);
    }

    /// <summary>Removes a key from a mapping; returns its value (or null).</summary>
    public static YamlNode? Remove(YamlMappingNode map, string key)
    {
        var (k, v) = Find(map, key);
        if (k is not null) map.Children.Remove(k);
        return v;
    }

    /// <summary>Sets a key, keeping the existing key node (and its position) when there is one.</summary>
    public static void Set(YamlMappingNode map, YamlNode keyNode, YamlNode value)
    {
        var key = ((YamlScalarNode)keyNode).Value!;
        var (existing, _) = Find(map, key);
        if (existing is not null) map.Children[existing] = value;
        else map.Children.Add(keyNode, value);
    }

    /// <summary>
    /// Merges <paramref name="top"/> over <paramref name="bottom"/> into <paramref name="bottom"/>: mappings merge key by
    /// key, recursively; anything else in <paramref name="top"/> replaces what was there (lists are replaced, as in Hydra).
    /// </summary>
    public static void MergeInto(YamlMappingNode bottom, YamlMappingNode top)
    {
        foreach (var kv in top.Children)
        {
            if (kv.Key is not YamlScalarNode { Value: { } key })
            {
                bottom.Children[kv.Key] = kv.Value;
                continue;
            }
            var (existingKey, existing) = Find(bottom, key);
            if (existing is YamlMappingNode em && kv.Value is YamlMappingNode tm) MergeInto(em, tm);
            else if (existingKey is not null) bottom.Children[existingKey] = kv.Value;
            else bottom.Children.Add(kv.Key, kv.Value);
        }
    }

    /// <summary>The node at a dotted path from the root, or null (with the deepest mapping reached and the missing key).</summary>
    public static (YamlNode? Node, YamlMappingNode? Parent, string Missing, string Prefix) At(YamlMappingNode root, string[] path)
    {
        YamlNode current = root;
        for (var i = 0; i < path.Length; i++)
        {
            var prefix = string.Join(".", path.Take(i));
            if (current is not YamlMappingNode m) return (null, null, path[i], prefix);
            var (_, v) = Find(m, path[i]);
            if (v is null) return (null, m, path[i], prefix);
            current = v;
        }
        return (current, null, "", "");
    }

    /// <summary>Keys of a mapping, as strings.</summary>
    public static IEnumerable<string> Keys(YamlMappingNode map) =>
        map.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value ?? "");
}
