using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;
using Rlhf.Generators;

namespace Rlhf.Generators.Tests;

/// <summary>An in-memory AdditionalText (a schema file).</summary>
public sealed class MemoryText(string path, string text) : AdditionalText
{
    public override string Path { get; } = path;

    public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(text);
}

/// <summary>Runs the settings generator over in-memory schemas and compiles what it emits.</summary>
public static class GeneratorHarness
{
    private static readonly CSharpParseOptions Parse = new(LanguageVersion.Latest);

    /// <summary>
    /// Runtime assemblies plus YamlDotNet and LanguageExt, the generated code's dependencies, and Rlhf.Core (and the binding it
    /// stands on), whose enums the repository schemas name with <c>x-csharp-type</c>.
    /// </summary>
    public static IReadOnlyList<MetadataReference> References { get; } =
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .Concat([
                MetadataReference.CreateFromFile(typeof(YamlDotNet.RepresentationModel.YamlNode).Assembly.Location),
                MetadataReference.CreateFromFile(typeof(LanguageExt.Prelude).Assembly.Location),
                MetadataReference.CreateFromFile(Path.Combine(AppContext.BaseDirectory, "Rlhf.Core.dll")),
                MetadataReference.CreateFromFile(Path.Combine(AppContext.BaseDirectory, "Rlhf.Torch.dll")),
            ])
            .ToList();

    /// <summary>An empty library compilation to run the generator on.</summary>
    public static CSharpCompilation EmptyCompilation(string extraSource = "") => CSharpCompilation.Create(
        "GeneratedSettings",
        [CSharpSyntaxTree.ParseText("namespace Probe { internal static class Anchor { } }\n" + extraSource, Parse)],
        References,
        new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    /// <summary>A driver that tracks incremental steps.</summary>
    public static GeneratorDriver Driver(IEnumerable<AdditionalText> schemas) => CSharpGeneratorDriver.Create(
        [new SettingsGenerator().AsSourceGenerator()],
        schemas,
        Parse,
        driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator; returns the driver, the output compilation and the generator's diagnostics.</summary>
    public static (GeneratorDriver Driver, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(params (string Path, string Text)[] schemas) =>
        RunWith("", schemas);

    /// <summary>Runs the generator over a compilation that also holds <paramref name="extraSource"/> (types the schemas name).</summary>
    public static (GeneratorDriver Driver, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) RunWith(string extraSource, params (string Path, string Text)[] schemas)
    {
        var driver = Driver(schemas.Select(s => new MemoryText(s.Path, s.Text)));
        driver = driver.RunGeneratorsAndUpdateCompilation(EmptyCompilation(extraSource), out var output, out var diagnostics);
        return (driver, output, diagnostics);
    }

    /// <summary>Compiles the output and loads it; fails the test with every compiler error if it does not build.</summary>
    public static Assembly CompileAndLoad(Compilation output)
    {
        using var pe = new MemoryStream();
        var emit = output.Emit(pe);
        var errors = emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error || d.Severity == DiagnosticSeverity.Warning).ToList();
        Assert.True(emit.Success && errors.Count == 0, "generated code does not compile cleanly:\n" + string.Join("\n", errors));
        var context = new AssemblyLoadContext("generated-" + Guid.NewGuid(), isCollectible: true);
        pe.Position = 0;
        return context.LoadFromStream(pe);
    }

    /// <summary>The repository root (the folder holding Rlhf.sln).</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rlhf.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Rlhf.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The real schema files of the repository.</summary>
    public static (string Path, string Text)[] RepoSchemas() =>
        Directory.GetFiles(Path.Combine(RepoRoot(), "configs", "schema"), "*.schema.json")
            .OrderBy(p => p, StringComparer.Ordinal)
            .Select(p => (p, File.ReadAllText(p)))
            .ToArray();
}
