using System.Text.Json.Nodes;

namespace Rlhf.Core.Models;

/// <summary>
/// Typed look-ups into one config.json object that collect every problem (wrong type, conflicting keys) instead of
/// stopping at the first, so they can be reported all at once. Keys may be dotted paths one level deep
/// (<c>rope_parameters.rope_theta</c>). Pure: Shell's <c>HfConfig</c> reads the file and turns the problems into an error naming it.
/// </summary>
/// <param name="root">The parsed config.json object.</param>
public sealed class HfConfigReader(JsonObject root)
{
    /// <summary>Every problem found so far, in the order found.</summary>
    public List<string> Problems { get; } = [];

    /// <summary>Keys that were read but are ignored, as transformers ignores them (reported as one warning).</summary>
    public List<string> Ignored { get; } = [];

    /// <summary>The root object.</summary>
    public JsonObject Root => root;

    /// <summary>The node at <paramref name="key"/> (null when absent or JSON null).</summary>
    public JsonNode? Node(string key)
    {
        var dot = key.IndexOf('.');
        if (dot < 0) return root.TryGetPropertyValue(key, out var n) ? n : null;
        return root.TryGetPropertyValue(key[..dot], out var parent) && parent is JsonObject o && o.TryGetPropertyValue(key[(dot + 1)..], out var c) ? c : null;
    }

    /// <summary>Whether <paramref name="key"/> is present with a non-null value.</summary>
    public bool Has(string key) => Node(key) is not null;

    /// <summary>The value at <paramref name="key"/>, or <paramref name="fallback"/> when absent or null; a wrong type is a problem.</summary>
    public T Get<T>(string key, T fallback)
    {
        var n = Node(key);
        if (n is null) return fallback;
        if (Is<T>(n, out var value)) return value;
        Problems.Add($"'{key}' should be {Describe<T>()}, got {n.ToJsonString()}");
        return fallback;
    }

    /// <summary>The value at <paramref name="key"/>, or null when absent or null; a wrong type is a problem.</summary>
    public T? Optional<T>(string key) where T : struct
    {
        var n = Node(key);
        if (n is null) return null;
        if (Is<T>(n, out var value)) return value;
        Problems.Add($"'{key}' should be {Describe<T>()}, got {n.ToJsonString()}");
        return null;
    }

    /// <summary>A string at <paramref name="key"/>, or null.</summary>
    public string? Str(string key) => Get<string?>(key, null);

    /// <summary>
    /// One value that may be written under several keys (the transformers 5.x and the older layout): the value of the
    /// first key present; when two present keys disagree, a problem naming every key and value.
    /// </summary>
    public T? OneOf<T>(params string[] keys) where T : struct
    {
        var found = keys.Select(k => (Key: k, Value: Optional<T>(k))).Where(x => x.Value is not null).ToList();
        if (found.Count == 0) return null;
        if (found.Any(x => !EqualityComparer<T>.Default.Equals(x.Value!.Value, found[0].Value!.Value)))
            Problems.Add($"conflicting values: {string.Join(", ", found.Select(x => $"'{x.Key}' = {Format(x.Value!.Value)}"))}");
        return found[0].Value;
    }

    /// <summary>As <see cref="OneOf{T}"/> for a string written under several keys.</summary>
    public string? OneOfString(params string[] keys)
    {
        var found = keys.Select(k => (Key: k, Value: Str(k))).Where(x => x.Value is not null).ToList();
        if (found.Count == 0) return null;
        if (found.Any(x => x.Value != found[0].Value))
            Problems.Add($"conflicting values: {string.Join(", ", found.Select(x => $"'{x.Key}' = \"{x.Value}\""))}");
        return found[0].Value;
    }

    private static string Format<T>(T v) => v is double d ? d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : v?.ToString() ?? "null";

    private static bool Is<T>(JsonNode n, out T value)
    {
        value = default!;
        if (n is not JsonValue v) return false;
        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        try
        {
            if (target == typeof(double) && v.TryGetValue<double>(out var d)) { value = (T)(object)d; return true; }
            if (target == typeof(long) && v.TryGetValue<long>(out var l)) { value = (T)(object)l; return true; }
            if (target == typeof(int) && v.TryGetValue<int>(out var i)) { value = (T)(object)i; return true; }
            if (target == typeof(bool) && v.TryGetValue<bool>(out var b)) { value = (T)(object)b; return true; }
            if (target == typeof(string) && v.TryGetValue<string>(out var s)) { value = (T)(object)s; return true; }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { }
        return false;
    }

    private static string Describe<T>()
    {
        var t = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        return t == typeof(double) ? "a number" : t == typeof(long) || t == typeof(int) ? "an integer" : t == typeof(bool) ? "true or false" : "a string";
    }
}
