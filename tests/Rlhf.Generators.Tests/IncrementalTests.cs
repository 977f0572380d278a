using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Rlhf.Generators;

namespace Rlhf.Generators.Tests;

/// <summary>The pipeline caches: a second run with nothing changed does no work; equal inputs give equal models.</summary>
public class IncrementalTests
{
    private static readonly string[] Steps = [SettingsGenerator.Steps.Parse, SettingsGenerator.Steps.Table, SettingsGenerator.Steps.Emit];

    private static IEnumerable<IncrementalGeneratorRunStep> StepsOf(GeneratorDriver driver, string name) =>
        driver.GetRunResult().Results.Single().TrackedSteps.TryGetValue(name, out var steps) ? steps : [];

    [Fact]
    public void Second_run_of_the_driver_is_fully_cached()
    {
        var schemas = GeneratorHarness.RepoSchemas().Select(s => (AdditionalText)new MemoryText(s.Path, s.Text)).ToArray();
        var compilation = GeneratorHarness.EmptyCompilation();
        var driver = GeneratorHarness.Driver(schemas).RunGenerators(compilation);
        Assert.All(Steps, s => Assert.NotEmpty(StepsOf(driver, s)));

        driver = driver.RunGenerators(compilation.Clone());
        foreach (var name in Steps)
        {
            var outputs = StepsOf(driver, name).SelectMany(s => s.Outputs).ToList();
            Assert.NotEmpty(outputs);
            Assert.All(outputs, o => Assert.True(o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{name}: {o.Reason}"));
        }
        // The emitted sources themselves are all cached.
        var result = driver.GetRunResult().Results.Single();
        Assert.Equal(schemas.Length + SettingsGenerator.RuntimeResources.Length, result.GeneratedSources.Length);   // one per schema + the runtime parts
    }

    [Fact]
    public void Editing_one_schema_reparses_only_that_file()
    {
        var schemas = GeneratorHarness.RepoSchemas().Select(s => (AdditionalText)new MemoryText(s.Path, s.Text)).ToArray();
        var compilation = GeneratorHarness.EmptyCompilation();
        var driver = GeneratorHarness.Driver(schemas).RunGenerators(compilation);
        var logging = schemas.Single(s => s.Path.EndsWith("logging.schema.json", StringComparison.Ordinal));
        var edited = new MemoryText(logging.Path, logging.GetText()!.ToString().Replace("Write metrics.jsonl.", "Write metrics as JSON lines."));
        driver = driver.ReplaceAdditionalText(logging, edited).RunGenerators(compilation);

        var parse = StepsOf(driver, SettingsGenerator.Steps.Parse).SelectMany(s => s.Outputs).ToList();
        Assert.Equal(1, parse.Count(o => o.Reason == IncrementalStepRunReason.Modified));
        Assert.Equal(schemas.Length - 1, parse.Count(o => o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged));
        // A description does not change the type table, so the other files' sources stay cached.
        Assert.All(StepsOf(driver, SettingsGenerator.Steps.Table).SelectMany(s => s.Outputs), o => Assert.Equal(IncrementalStepRunReason.Unchanged, o.Reason));
        var emit = StepsOf(driver, SettingsGenerator.Steps.Emit).SelectMany(s => s.Outputs).ToList();
        Assert.Equal(1, emit.Count(o => o.Reason == IncrementalStepRunReason.Modified));
    }

    [Fact]
    public void Equal_schemas_give_equal_models_tables_and_sources()
    {
        foreach (var (path, text) in GeneratorHarness.RepoSchemas())
        {
            var a = SchemaParser.Parse(path, text);
            var b = SchemaParser.Parse(path, new string(text.ToCharArray()));
            Assert.Equal(a, b);
            Assert.Equal(a.GetHashCode(), b.GetHashCode());
        }
        var all1 = GeneratorHarness.RepoSchemas().Select(s => SchemaParser.Parse(s.Path, s.Text)).ToImmutableArray();
        var all2 = GeneratorHarness.RepoSchemas().Select(s => SchemaParser.Parse(s.Path, s.Text)).ToImmutableArray();
        var t1 = SettingsEmitter.BuildTable(all1);
        var t2 = SettingsEmitter.BuildTable(all2);
        Assert.Equal(t1, t2);
        Assert.Equal(SettingsEmitter.Emit(all1[0], t1), SettingsEmitter.Emit(all2[0], t2));
    }

    [Fact]
    public void Different_schemas_give_different_models()
    {
        const string a = """{"type":"object","additionalProperties":false,"properties":{"x":{"type":"integer","default":1}}}""";
        var b = a.Replace("\"default\":1", "\"default\":2");
        Assert.NotEqual(SchemaParser.Parse("/s/a.schema.json", a), SchemaParser.Parse("/s/a.schema.json", b));
    }
}
