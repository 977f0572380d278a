using System.Collections.Generic;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Rlhf.Generators
{
    /// <summary>The generator's diagnostic descriptors (RLHF0001…), each about a schema file.</summary>
    public static class SchemaDiagnostics
    {
        private const string Category = "Rlhf.Settings";

        private static DiagnosticDescriptor D(string id, string title) =>
            new DiagnosticDescriptor(id, title, "{0}", Category, DiagnosticSeverity.Error, isEnabledByDefault: true);

        /// <summary>The schema file is not valid JSON.</summary>
        public static readonly DiagnosticDescriptor InvalidJson = D("RLHF0001", "Schema file is not valid JSON");
        /// <summary>A type is missing, unknown or outside the supported subset.</summary>
        public static readonly DiagnosticDescriptor BadType = D("RLHF0002", "Unsupported or invalid schema type");
        /// <summary>A $ref points nowhere.</summary>
        public static readonly DiagnosticDescriptor UnresolvedRef = D("RLHF0003", "Unresolved $ref");
        /// <summary>A default does not fit its type, range or enum.</summary>
        public static readonly DiagnosticDescriptor BadDefault = D("RLHF0004", "Invalid default value");
        /// <summary>A required key is not a property.</summary>
        public static readonly DiagnosticDescriptor BadRequired = D("RLHF0005", "Required key is not a property");
        /// <summary>A keyword outside the documented subset.</summary>
        public static readonly DiagnosticDescriptor UnsupportedKeyword = D("RLHF0006", "Unsupported JSON Schema keyword");
        /// <summary>Two schema types map to one C# name.</summary>
        public static readonly DiagnosticDescriptor DuplicateType = D("RLHF0007", "Duplicate generated type name");
        /// <summary>Objects must close themselves with additionalProperties false.</summary>
        public static readonly DiagnosticDescriptor OpenObject = D("RLHF0008", "Object schema must set additionalProperties to false");
        /// <summary>A title, key or enum value does not make a valid or unique C# name.</summary>
        public static readonly DiagnosticDescriptor BadName = D("RLHF0009", "Invalid or colliding name");
        /// <summary>A range keyword is malformed or does not apply.</summary>
        public static readonly DiagnosticDescriptor BadConstraint = D("RLHF0010", "Invalid constraint");
        /// <summary>anyOf outside the two supported forms.</summary>
        public static readonly DiagnosticDescriptor BadAnyOf = D("RLHF0011", "Unsupported anyOf form");

        private static readonly Dictionary<string, DiagnosticDescriptor> ById = new Dictionary<string, DiagnosticDescriptor>
        {
            [InvalidJson.Id] = InvalidJson, [BadType.Id] = BadType, [UnresolvedRef.Id] = UnresolvedRef,
            [BadDefault.Id] = BadDefault, [BadRequired.Id] = BadRequired, [UnsupportedKeyword.Id] = UnsupportedKeyword,
            [DuplicateType.Id] = DuplicateType, [OpenObject.Id] = OpenObject, [BadName.Id] = BadName,
            [BadConstraint.Id] = BadConstraint, [BadAnyOf.Id] = BadAnyOf,
        };

        /// <summary>Builds diagnostic data pointing at a position of a schema file.</summary>
        public static DiagnosticInfo Info(DiagnosticDescriptor d, string filePath, TextPos pos, string message)
            => new DiagnosticInfo(d.Id, message, filePath, pos, pos.Line, pos.Column + pos.Length);

        /// <summary>Turns diagnostic data back into a Roslyn diagnostic (only at report time).</summary>
        public static Diagnostic ToDiagnostic(DiagnosticInfo info)
        {
            var location = Location.Create(
                info.FilePath,
                new TextSpan(info.Pos.Offset, info.Pos.Length),
                new LinePositionSpan(new LinePosition(info.Pos.Line, info.Pos.Column), new LinePosition(info.EndLine, info.EndColumn)));
            return Diagnostic.Create(ById[info.Id], location, info.Message);
        }
    }
}
