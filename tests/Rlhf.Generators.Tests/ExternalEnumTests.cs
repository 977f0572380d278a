using System.Reflection;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Generators.Tests;

/// <summary><c>x-csharp-type</c>: a schema enum binds to an existing C# enum instead of declaring a second one.</summary>
public class ExternalEnumTests
{
    private const string Probe = "namespace Probe.Losses { public enum Aggregation { Grpo, Bnpo, DrGrpo, Dapo, Extra } }";


    private static Assembly Build(string schema)
    {
        var (_, output, diagnostics) = GeneratorHarness.RunWith(Probe, ("/s/algo.schema.json", schema));
        Assert.Empty(diagnostics);
        return GeneratorHarness.CompileAndLoad(output);
    }

    private static object Bind(Assembly asm, string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var sources = Activator.CreateInstance(asm.GetType("Rlhf.Settings.NodeSources")!, "test.yaml")!;
        var ctx = Activator.CreateInstance(asm.GetType("Rlhf.Settings.BindContext")!, sources)!;
        var result = asm.GetType("Rlhf.Settings.AlgoSettings")!.GetMethod("Bind")!.Invoke(null, [stream.Documents[0].RootNode, ctx, ""])!;
        Assert.True((bool)result.GetType().GetProperty("IsSuccess")!.GetValue(result)!, "binding failed");
        var seq = result.GetType().GetMethod("SuccessToSeq")!.Invoke(result, null)!;
        return seq.GetType().GetProperty("Head")!.GetValue(seq)!;
    }

    private const string Simple = """
    {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "loss_type": { "type": "string", "x-csharp-type": "Probe.Losses.Aggregation", "enum": ["grpo", "bnpo", "dr_grpo", "dapo"], "default": "dapo" }
      }
    }
    """;

    [Fact]
    public void The_record_uses_the_named_enum_and_declares_none_of_its_own()
    {
        var asm = Build(Simple);
        var prop = asm.GetType("Rlhf.Settings.AlgoSettings")!.GetProperty("LossType")!;
        Assert.Equal("Probe.Losses.Aggregation", prop.PropertyType.FullName);
        Assert.DoesNotContain(asm.GetTypes(), t => t.IsEnum && t.Namespace == "Rlhf.Settings");
        Assert.NotNull(asm.GetType("Rlhf.Settings.AggregationYaml"));
    }

    [Fact]
    public void Snake_case_yaml_names_bind_to_pascal_case_members_and_write_back()
    {
        var asm = Build(Simple);
        var v = Bind(asm, "loss_type: dr_grpo\n");
        Assert.Equal("DrGrpo", v.GetType().GetProperty("LossType")!.GetValue(v)!.ToString());
        var dflt = Bind(asm, "{}\n");
        Assert.Equal("Dapo", dflt.GetType().GetProperty("LossType")!.GetValue(dflt)!.ToString());
        var node = (YamlMappingNode)dflt.GetType().GetMethod("ToYaml")!.Invoke(dflt, null)!;
        Assert.Equal("dapo", ((YamlScalarNode)node.Children[new YamlScalarNode("loss_type")]).Value);
    }

    [Fact]
    public void A_yaml_name_without_a_member_fails_to_compile_rather_than_binding_wrongly()
    {
        var schema = Simple.Replace("\"dapo\"]", "\"dapo\", \"mean\"]");
        var (_, output, diagnostics) = GeneratorHarness.RunWith(Probe, ("/s/algo.schema.json", schema));
        Assert.Empty(diagnostics);
        var errors = output.GetDiagnostics().Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error).Select(d => d.GetMessage()).ToList();
        Assert.Contains(errors, e => e.Contains("'Mean'"));
    }

    public static TheoryData<string, string, string> Bad => new()
    {
        { """{"type":"object","additionalProperties":false,"properties":{"x":{"type":"integer","x-csharp-type":"Probe.Losses.Aggregation"}}}""", "RLHF0006", "'x': 'x-csharp-type' applies to string enums only" },
        { """{"type":"object","additionalProperties":false,"properties":{"x":{"type":"string","enum":["grpo"],"x-csharp-type":"Aggregation"}}}""", "RLHF0009", "is not a namespace-qualified C# type name" },
        { """{"type":"object","additionalProperties":false,"properties":{"x":{"type":"string","enum":["grpo"],"title":"GrpoLossType","x-csharp-type":"Probe.Losses.Aggregation"}}}""", "RLHF0009", "title \"GrpoLossType\" differs from the name of x-csharp-type Probe.Losses.Aggregation" },
    };

    [Theory]
    [MemberData(nameof(Bad))]
    public void Misuse_is_a_diagnostic_naming_the_key(string schema, string id, string message)
    {
        var (_, _, diagnostics) = GeneratorHarness.RunWith(Probe, ("/s/bad.schema.json", schema));
        var d = Assert.Single(diagnostics, x => x.Id == id);
        Assert.Contains(message, d.GetMessage());
    }
}
