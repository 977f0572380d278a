using System;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using System.Text;

namespace Rlhf.Generators
{
    /// <summary>
    /// Incremental generator: every <c>*.schema.json</c> AdditionalFile → sealed settings records, enums,
    /// YAML binders and writers in <c>Rlhf.Settings</c>, plus the small binding runtime they share.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class SettingsGenerator : IIncrementalGenerator
    {
        /// <summary>Tracking names of the pipeline steps (tests assert they are cached on a second run).</summary>
        public static class Steps
        {
            /// <summary>One schema file parsed into its model.</summary>
            public const string Parse = "ParseSchema";
            /// <summary>The table of all declared types.</summary>
            public const string Table = "TypeTable";
            /// <summary>Source emitted for one schema file.</summary>
            public const string Emit = "EmitSettings";
        }

        /// <summary>Names of the embedded runtime sources (types; the helpers generated binders call).</summary>
        public static readonly string[] RuntimeResources = ["Rlhf.Generators.Runtime.SettingsRuntime.cs", "Rlhf.Generators.Runtime.SettingsBinding.cs"];

        /// <inheritdoc />
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            context.RegisterPostInitializationOutput(ctx =>
            {
                foreach (var resource in RuntimeResources)
                    ctx.AddSource(resource.Substring("Rlhf.Generators.Runtime.".Length).Replace(".cs", ".g.cs"), SourceText.From(RuntimeSource(resource), Encoding.UTF8));
            });

            var files = context.AdditionalTextsProvider
                .Where(static t => t.Path.EndsWith(".schema.json", StringComparison.OrdinalIgnoreCase))
                .Select(static (t, ct) => SchemaParser.Parse(t.Path, t.GetText(ct)?.ToString()))
                .WithTrackingName(Steps.Parse);

            var table = files.Collect()
                .Select(static (all, _) => SettingsEmitter.BuildTable(all))
                .WithTrackingName(Steps.Table);

            var emitted = files.Combine(table)
                .Select(static (pair, _) => SettingsEmitter.Emit(pair.Left, pair.Right))
                .WithTrackingName(Steps.Emit);

            context.RegisterSourceOutput(files, static (spc, f) =>
            {
                foreach (var d in f.Diagnostics) spc.ReportDiagnostic(SchemaDiagnostics.ToDiagnostic(d));
            });
            context.RegisterSourceOutput(table, static (spc, t) =>
            {
                foreach (var d in t.Diagnostics) spc.ReportDiagnostic(SchemaDiagnostics.ToDiagnostic(d));
            });
            context.RegisterSourceOutput(emitted, static (spc, e) =>
            {
                foreach (var d in e.Diagnostics) spc.ReportDiagnostic(SchemaDiagnostics.ToDiagnostic(d));
                spc.AddSource(e.HintName, SourceText.From(e.Source, Encoding.UTF8));
            });
        }

        /// <summary>One embedded part of the binding runtime (ConfigError, BindContext, EquatableList…; SettingsBinding) as source text.</summary>
        public static string RuntimeSource(string resource)
        {
            using var stream = typeof(SettingsGenerator).Assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException("embedded runtime missing: " + resource);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
    }
}
