using System.Reflection;
using LanguageExt;
using Microsoft.CodeAnalysis;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Generators.Tests;

/// <summary>Compiles the generated code and binds real YAML through it.</summary>
public class CompileAndBindTests
{
    private const string Sampling = """
    {
      "title": "SamplingSettings",
      "description": "Sampling <settings> & more.",
      "type": "object",
      "additionalProperties": false,
      "required": ["name"],
      "properties": {
        "name": { "type": "string", "description": "Run name." },
        "temperature": { "type": "number", "minimum": 0, "default": 0.7 },
        "top_k": { "type": "integer", "minimum": 0, "default": 0 },
        "mode": { "type": "string", "enum": ["greedy", "sample", "beam_search"], "default": "sample" },
        "stage": { "type": "integer", "enum": [0, 1, 2, 3], "default": 0 },
        "batch": { "anyOf": [{ "type": "integer", "minimum": 1 }, { "const": "auto" }] },
        "stops": { "type": "array", "items": { "type": "integer", "minimum": 0 }, "default": [2] },
        "devices": { "anyOf": [{ "type": "array", "items": { "type": "integer", "minimum": 0 } }, { "type": "string", "format": "range-expression" }] },
        "cache": { "$ref": "cache.schema.json", "default": {} },
        "extra": { "$ref": "#/definitions/extra" },
        "flag": { "type": "boolean", "default": true },
        "kind": { "type": "string", "title": "KindName", "enum": ["alpha", "beta"], "x-resolved": "required unless the resolver derives it" }
      },
      "definitions": {
        "extra": { "type": "object", "additionalProperties": false, "properties": { "note": { "type": "string", "default": "n" } } }
      }
    }
    """;

    private const string Cache = """
    {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "block_size": { "type": "integer", "minimum": 1, "maximum": 256, "default": 16, "description": "Tokens per block." },
        "budget_mb": { "type": "number", "exclusiveMinimum": 0 }
      }
    }
    """;

    private static Assembly Build()
    {
        var (_, output, diagnostics) = GeneratorHarness.Run(("/s/sampling.schema.json", Sampling), ("/s/cache.schema.json", Cache));
        Assert.Empty(diagnostics);
        return GeneratorHarness.CompileAndLoad(output);
    }

    private static (object? Value, IReadOnlyList<object> Errors) Bind(Assembly asm, string typeName, string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var sourcesType = asm.GetType("Rlhf.Settings.NodeSources")!;
        var sources = Activator.CreateInstance(sourcesType, "test.yaml")!;
        var ctx = Activator.CreateInstance(asm.GetType("Rlhf.Settings.BindContext")!, sources)!;
        var bind = asm.GetType("Rlhf.Settings." + typeName)!.GetMethod("Bind")!;
        var result = bind.Invoke(null, [stream.Documents[0].RootNode, ctx, ""])!;
        var isSuccess = (bool)result.GetType().GetProperty("IsSuccess")!.GetValue(result)!;
        if (isSuccess)
        {
            var seq = result.GetType().GetMethod("SuccessToSeq")!.Invoke(result, null)!;
            return (seq.GetType().GetProperty("Head")!.GetValue(seq), []);
        }
        var fails = (System.Collections.IEnumerable)result.GetType().GetMethod("FailToSeq")!.Invoke(result, null)!;
        return (null, fails.Cast<object>().ToList());
    }

    private static object? Prop(object o, string name) => o.GetType().GetProperty(name)!.GetValue(o);

    [Fact]
    public void Generated_code_for_the_repository_schemas_compiles_without_diagnostics()
    {
        var (_, output, diagnostics) = GeneratorHarness.Run(GeneratorHarness.RepoSchemas());
        Assert.Empty(diagnostics);
        var asm = GeneratorHarness.CompileAndLoad(output);
        Assert.NotNull(asm.GetType("Rlhf.Settings.RlhfConfig"));
        Assert.NotNull(asm.GetType("Rlhf.Settings.DeepSpeedSettings"));
    }

    [Fact]
    public void Binds_values_and_fills_defaults()
    {
        var asm = Build();
        var (v, errors) = Bind(asm, "SamplingSettings", """
            name: run1
            temperature: 1.5
            mode: beam_search
            batch: auto
            stops: [1, 2, 3]
            devices: list(range(0,8,2))
            cache: { block_size: 32 }
            extra: { }
            """);
        Assert.Empty(errors);
        Assert.Equal("run1", Prop(v!, "Name"));
        Assert.Equal(1.5, Prop(v!, "Temperature"));
        Assert.Equal(0L, Prop(v!, "TopK"));
        Assert.Equal("BeamSearch", Prop(v!, "Mode")!.ToString());
        Assert.Null(Prop(v!, "Batch"));
        Assert.Equal(new long[] { 1, 2, 3 }, ((IEnumerable<long>)Prop(v!, "Stops")!).ToArray());
        Assert.Equal(new long[] { 0, 2, 4, 6 }, ((IEnumerable<long>)Prop(v!, "Devices")!).ToArray());
        Assert.Equal(32L, Prop(Prop(v!, "Cache")!, "BlockSize"));
        Assert.Null(Prop(Prop(v!, "Cache")!, "BudgetMb"));
        Assert.Equal("n", Prop(Prop(v!, "Extra")!, "Note"));
        Assert.Equal(true, Prop(v!, "Flag"));
    }

    [Fact]
    public void A_resolved_key_is_optional_when_bound_but_not_nullable_and_documented_by_what_sets_it()
    {
        var asm = Build();
        var type = asm.GetType("Rlhf.Settings.SamplingSettings")!;
        var kind = type.GetProperty("Kind")!;
        Assert.True(kind.PropertyType.IsEnum);                              // not Nullable<KindName>
        var (absent, e1) = Bind(asm, "SamplingSettings", "name: x\n");
        Assert.Empty(e1);
        Assert.Equal("Alpha", kind.GetValue(absent)!.ToString());           // the type's default until a resolver sets it
        var (written, e2) = Bind(asm, "SamplingSettings", "name: x\nkind: beta\n");
        Assert.Empty(e2);
        Assert.Equal("Beta", kind.GetValue(written)!.ToString());
        var (_, e3) = Bind(asm, "SamplingSettings", "name: x\nkind: gamma\n");
        Assert.Contains("expected one of alpha, beta", Assert.Single(e3).ToString());
        var fields = (System.Collections.IEnumerable)type.GetProperty("Fields")!.GetValue(null)!;
        var field = fields.Cast<object>().Single(f => (string)Prop(f, "Key")! == "kind");
        Assert.Equal(("required unless the resolver derives it", false), ((string)Prop(field, "Default")!, (bool)Prop(field, "Required")!));
    }

    [Fact]
    public void Missing_sections_take_their_defaults_and_records_compare_by_value()
    {
        var asm = Build();
        var (a, e1) = Bind(asm, "SamplingSettings", "name: x\n");
        var (b, e2) = Bind(asm, "SamplingSettings", "name: x\nstops: [2]\ncache: {block_size: 16}\n");
        Assert.Empty(e1);
        Assert.Empty(e2);
        Assert.Equal(16L, Prop(Prop(a!, "Cache")!, "BlockSize"));
        Assert.Equal(a, b);
        Assert.Equal(a!.GetHashCode(), b!.GetHashCode());
        Assert.Null(Prop(a!, "Extra"));
    }

    [Fact]
    public void Collects_every_error_at_once_with_line_column_and_key_path()
    {
        var asm = Build();
        var (_, errors) = Bind(asm, "SamplingSettings", """
            temprature: 0.5
            top_k: -1
            mode: sampel
            stage: 5
            stops: [1, x]
            cache:
              block_size: big
              budget_mb: 0
            flag: yes
            """);
        var text = errors.Select(e => e.ToString()!).ToList();
        Assert.Equal(
        [
            "test.yaml:1:1: name: missing required key 'name'",
            "test.yaml:1:1: temprature: unknown key 'temprature'; did you mean 'temperature'?",
            "test.yaml:2:8: top_k: out of range: must be ≥ 0, got -1",
            "test.yaml:3:7: mode: expected one of greedy, sample, beam_search, got \"sampel\"; did you mean 'sample'?",
            "test.yaml:4:8: stage: expected one of 0, 1, 2, 3, got 5",
            "test.yaml:5:12: stops[1]: expected an integer, got \"x\"",
            "test.yaml:7:15: cache.block_size: expected an integer, got \"big\"",
            "test.yaml:8:14: cache.budget_mb: out of range: must be > 0, got 0",
            "test.yaml:9:7: flag: expected a boolean (true or false), got \"yes\"",
        ], text.OrderBy(t => int.Parse(t.Split(':')[1])).ThenBy(t => t, StringComparer.Ordinal).ToList());
    }

    [Fact]
    public void Writes_yaml_that_binds_back_to_equal_settings()
    {
        var asm = Build();
        var (v, errors) = Bind(asm, "SamplingSettings", "name: \"123\"\ntemperature: 3.0e-6\ndevices: [3, 1]\nextra: {note: 'a: b'}\n");
        Assert.Empty(errors);
        var node = (YamlMappingNode)v!.GetType().GetMethod("ToYaml")!.Invoke(v, null)!;
        var writer = new StringWriter();
        new YamlStream(new YamlDocument(node)).Save(writer, false);
        var (back, errors2) = Bind(asm, "SamplingSettings", writer.ToString());
        Assert.Empty(errors2);
        Assert.Equal(v, back);
    }

    [Fact]
    public void Doc_comments_come_from_descriptions_and_fields_document_every_key()
    {
        var (_, output, _) = GeneratorHarness.Run(("/s/sampling.schema.json", Sampling), ("/s/cache.schema.json", Cache));
        var source = string.Join("\n", output.SyntaxTrees.Select(t => t.ToString()));
        Assert.Contains("/// Sampling &lt;settings&gt; &amp; more.", source);
        Assert.Contains("/// Tokens per block.", source);
        Assert.Contains("public sealed partial record SamplingSettings", source);
        Assert.Contains("public required string Name { get; init; }", source);
        var asm = GeneratorHarness.CompileAndLoad(output);
        var fields = (System.Collections.IEnumerable)asm.GetType("Rlhf.Settings.CacheSettings")!.GetProperty("Fields")!.GetValue(null)!;
        var blockSize = fields.Cast<object>().Single(f => (string)Prop(f, "Key")! == "block_size");
        Assert.Equal("integer ≥ 1, ≤ 256", Prop(blockSize, "Type"));
        Assert.Equal("16", Prop(blockSize, "Default"));
    }
}
