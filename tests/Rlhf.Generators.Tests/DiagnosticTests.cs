using Microsoft.CodeAnalysis;

namespace Rlhf.Generators.Tests;

/// <summary>Malformed schemas are compile-time diagnostics naming the schema file and key, never a crash.</summary>
public class DiagnosticTests
{
    private static string Obj(string properties, string extra = "") =>
        "{\"type\":\"object\",\"additionalProperties\":false" + extra + ",\"properties\":{" + properties + "}}";

    public static TheoryData<string, string, string> Cases => new()
    {
        { "{\"type\": \"object\",, }", "RLHF0001", "invalid JSON at 1:19: expected a member name" },
        { Obj("\"x\":{\"type\":\"strng\"}"), "RLHF0002", "'x': unknown type \"strng\"" },
        { Obj("\"x\":{\"description\":\"no type\"}"), "RLHF0002", "'x': missing \"type\"" },
        { Obj("\"x\":{\"type\":[\"integer\",\"null\"]}"), "RLHF0002", "'x': \"type\" must be one string" },
        { Obj("\"x\":{\"$ref\":\"missing.schema.json\"}"), "RLHF0003", "'x': $ref \"missing.schema.json#\" does not name" },
        { Obj("\"x\":{\"$ref\":\"#/definitions/nope\"}"), "RLHF0003", "$ref \"bad.schema.json#/definitions/nope\"" },
        { Obj("\"x\":{\"type\":\"integer\",\"default\":\"ten\"}"), "RLHF0004", "'x': default \"ten\" is not an integer" },
        { Obj("\"x\":{\"type\":\"integer\",\"minimum\":1,\"default\":0}"), "RLHF0004", "'x': default 0 is below the minimum 1" },
        { Obj("\"x\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"],\"default\":\"c\"}"), "RLHF0004", "'x': default \"c\" is not one of a, b" },
        { Obj("\"x\":{\"type\":\"integer\",\"default\":1}", ",\"required\":[\"x\",\"y\"]"), "RLHF0005", "required key 'y' is not among the properties" },
        { Obj("\"x\":{\"oneOf\":[{\"type\":\"integer\"}]}"), "RLHF0006", "'x': keyword 'oneOf' is outside the supported subset" },
        { "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}}}", "RLHF0008", "'(root)': set \"additionalProperties\": false" },
        { Obj("\"a_b\":{\"type\":\"integer\"},\"a-b\":{\"type\":\"integer\"}"), "RLHF0009", "'a-b': key 'a-b' maps to C# member 'AB'" },
        { Obj("\"x\":{\"type\":\"string\",\"minimum\":3}"), "RLHF0010", "'x': minimum/maximum only apply to integer and number, not string" },
        { Obj("\"x\":{\"type\":\"integer\",\"minimum\":5,\"maximum\":1}"), "RLHF0010", "the lower bound 5 is above the upper bound 1" },
        { Obj("\"x\":{\"anyOf\":[{\"type\":\"string\"},{\"const\":\"auto\"}]}"), "RLHF0011", "'x': \"auto\" may only be combined with integer, number or boolean" },
        { Obj("\"x\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}"), "RLHF0011", "'x': anyOf supports two forms" },
        { Obj("\"x\":{\"type\":\"integer\",\"default\":1,\"x-resolved\":\"the resolver\"}"), "RLHF0010", "'x': x-resolved is for a key that is neither required nor defaulted" },
        { Obj("\"x\":{\"type\":\"integer\"}", ",\"required\":[\"x\"]").Replace("\"integer\"}", "\"integer\",\"x-resolved\":\"r\"}"), "RLHF0010", "'x': x-resolved is for a key that is neither required nor defaulted" },
        { Obj("\"x\":{\"type\":\"integer\",\"x-resolved\":true}"), "RLHF0010", "'x': x-resolved must be a string saying what sets the key" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Malformed_schema_gives_its_diagnostic(string schema, string id, string message)
    {
        var (_, _, diagnostics) = GeneratorHarness.Run(("/s/bad.schema.json", schema));
        Assert.DoesNotContain(diagnostics, d => d.Id is "CS8785" or "AD0001"); // generator crashed
        var d = Assert.Single(diagnostics, x => x.Id == id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.StartsWith("bad.schema.json: ", d.GetMessage());
        Assert.Contains(message, d.GetMessage());
        Assert.Equal("/s/bad.schema.json", d.Location.GetLineSpan().Path);
    }

    [Fact]
    public void Diagnostic_points_at_the_offending_key()
    {
        const string schema = "{\n  \"type\": \"object\",\n  \"additionalProperties\": false,\n  \"properties\": {\n    \"x\": { \"type\": \"integer\", \"default\": true }\n  }\n}";
        var (_, _, diagnostics) = GeneratorHarness.Run(("/s/bad.schema.json", schema));
        var d = Assert.Single(diagnostics);
        Assert.Equal("RLHF0004", d.Id);
        var span = d.Location.GetLineSpan();
        Assert.Equal(4, span.StartLinePosition.Line);      // 0-based: line 5
        Assert.Equal(41, span.StartLinePosition.Character); // the default's value, "true"
    }

    [Fact]
    public void Duplicate_type_names_across_files_are_reported()
    {
        const string a = """{"title":"Same","type":"object","additionalProperties":false,"properties":{}}""";
        var (_, _, diagnostics) = GeneratorHarness.Run(("/s/a.schema.json", a), ("/s/b.schema.json", a));
        var d = Assert.Single(diagnostics);
        Assert.Equal("RLHF0007", d.Id);
        Assert.Contains("b.schema.json: type name 'Same'", d.GetMessage());
    }

    [Fact]
    public void Valid_schema_with_malformed_neighbour_still_generates_its_records()
    {
        const string good = """{"type":"object","additionalProperties":false,"properties":{"x":{"type":"integer","default":1}}}""";
        var (driver, output, diagnostics) = GeneratorHarness.Run(("/s/good.schema.json", good), ("/s/broken.schema.json", "{ nope"));
        Assert.Equal("RLHF0001", Assert.Single(diagnostics).Id);
        Assert.Contains(driver.GetRunResult().Results.Single().GeneratedSources, s => s.HintName == "good.g.cs");
        GeneratorHarness.CompileAndLoad(output);
    }
}
