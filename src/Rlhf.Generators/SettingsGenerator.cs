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

        /// <summary>Name of the embedded runtime source.</summary>
        public const string RuntimeResource = "Rlhf.Generators.Runtime.SettingsRuntime.cs";

        /// <inheritdoc />
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            context.RegisterPostInitializationOutput(ctx => ctx.AddSource("SettingsRuntime.g.cs", SourceText.From(RuntimeSource(), Encoding.UTF8)));

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

        /// <summary>The binding runtime (ConfigError, BindContext, SettingsBinding, EquatableList…) as source text.</summary>
        public static string RuntimeSource()
        {
            using var stream = typeof(SettingsGenerator).Assembly.GetManifestResourceStream(RuntimeResource)
                ?? throw new InvalidOperationException("embedded runtime missing: " + RuntimeResource);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
    }
}
