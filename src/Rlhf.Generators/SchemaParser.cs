using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Rlhf.Generators
{
    /// <summary>
    /// Reads one schema file (the documented JSON Schema subset) into records, enums and diagnostics.
    /// Pure: text in, equatable model out; nothing here throws on bad input.
    /// </summary>
    public sealed partial class SchemaParser
    {
        /// <summary>Keywords of the supported subset.</summary>
        public static readonly IReadOnlyCollection<string> Keywords = new HashSet<string>
        {
            "$schema", "$id", "$comment", "title", "description", "type", "properties", "required", "default",
            "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "$ref", "items",
            "additionalProperties", "anyOf", "definitions", "$defs", "examples", "const", "format", "pattern", ExternalTypeKeyword, ResolvedKeyword,
        };

        /// <summary>The extension keyword that binds a string enum to an existing C# enum (full name) instead of generating one.</summary>
        public const string ExternalTypeKeyword = "x-csharp-type";

        /// <summary>
        /// The extension keyword of a property that is neither required nor defaulted when bound but always set after
        /// resolution (its value, a string, says what sets it): the C# property is not nullable.
        /// </summary>
        public const string ResolvedKeyword = "x-resolved";

        private static readonly HashSet<string> ReservedMembers = new HashSet<string>
        {
            "Keys", "Fields", "Bind", "ToYaml", "EqualityContract", "Equals", "GetHashCode", "ToString", "Deconstruct", "PrintMembers",
        };

        private readonly string _file;
        private readonly string _path;
        private readonly List<RecordModel> _records = new List<RecordModel>();
        private readonly List<EnumModel> _enums = new List<EnumModel>();
        private readonly List<DiagnosticInfo> _diagnostics = new List<DiagnosticInfo>();

        private SchemaParser(string path)
        {
            _path = path;
            _file = FileNameOf(path);
        }

        /// <summary>The file name part of a path, for either separator.</summary>
        public static string FileNameOf(string path)
        {
            var i = Math.Max(path.LastIndexOf('/'), path.LastIndexOf('\\'));
            return i < 0 ? path : path.Substring(i + 1);
        }

        /// <summary>The stem of a schema file name: <c>online_dpo.schema.json</c> → <c>online_dpo</c>.</summary>
        public static string StemOf(string fileName)
        {
            const string suffix = ".schema.json";
            return fileName.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) ? fileName.Substring(0, fileName.Length - suffix.Length) : fileName;
        }

        /// <summary>Parses one schema file.</summary>
        public static SchemaFileModel Parse(string path, string? text)
        {
            var p = new SchemaParser(path);
            p.Run(text ?? "");
            return new SchemaFileModel(p._file, path, p._records.ToEquatableArray(), p._enums.ToEquatableArray(), p._diagnostics.ToEquatableArray());
        }

        /// <summary>snake_case, kebab-case or dotted → PascalCase; keeps inner capitals (WarmupLR stays).</summary>
        public static string Pascal(string name)
        {
            var parts = name.Split(new[] { '_', '-', '.', ' ', '/' }, StringSplitOptions.RemoveEmptyEntries);
            var s = string.Concat(parts.Select(x => char.ToUpperInvariant(x[0]) + x.Substring(1)));
            if (s.Length == 0 || char.IsDigit(s[0])) s = "_" + s;
            return s;
        }

        private void Report(DiagnosticDescriptor d, TextPos pos, string message)
            => _diagnostics.Add(SchemaDiagnostics.Info(d, _path, pos, $"{_file}: {message}"));

        private void Run(string text)
        {
            JsonValue root;
            try
            {
                root = JsonParser.Parse(text);
            }
            catch (JsonParseException e)
            {
                Report(SchemaDiagnostics.InvalidJson, e.Pos, $"invalid JSON at {e.Pos.Line + 1}:{e.Pos.Column + 1}: {e.Message}");
                return;
            }
            if (root.Kind != JsonKind.Object)
            {
                Report(SchemaDiagnostics.BadType, root.Pos, "the schema root must be a JSON object");
                return;
            }
            CheckKeywords(root, "(root)");
            foreach (var defsKey in new[] { "definitions", "$defs" })
            {
                var defs = root.Member(defsKey);
                if (defs == null) continue;
                if (defs.Value.Kind != JsonKind.Object)
                {
                    Report(SchemaDiagnostics.BadType, defs.Value.Pos, $"'{defsKey}' must be an object");
                    continue;
                }
                foreach (var d in defs.Value.Members)
                {
                    var where = $"{defsKey}.{d.Name}";
                    var key = $"{_file}#/{defsKey}/{d.Name}";
                    if (d.Value.Kind != JsonKind.Object) { Report(SchemaDiagnostics.BadType, d.Value.Pos, $"'{where}' must be a schema object"); continue; }
                    CheckKeywords(d.Value, where);
                    var name = TitleOr(d.Value, Pascal(d.Name), where);
                    var type = StringMember(d.Value, "type");
                    if (!(type == "string" && d.Value.Member("enum") != null)) CheckNoExternalType(d.Value, where);
                    if (type == "object") DeclareRecord(d.Value, key, name, where);
                    else if (type == "string" && d.Value.Member("enum") != null) DeclareEnum(d.Value, key, name, where);
                    else Report(SchemaDiagnostics.BadType, d.Value.Pos, $"'{where}': a definition must be an object or a string enum");
                }
            }
            if (root.Member("type") != null || root.Member("properties") != null)
            {
                var name = TitleOr(root, Pascal(StemOf(_file)) + "Settings", "(root)");
                DeclareRecord(root, _file + "#", name, "(root)");
            }
        }

        private void CheckKeywords(JsonValue schema, string where)
        {
            foreach (var m in schema.Members)
            {
                if (!Keywords.Contains(m.Name))
                    Report(SchemaDiagnostics.UnsupportedKeyword, m.NamePos,
                        $"'{where}': keyword '{m.Name}' is outside the supported subset (type, properties, required, default, minimum/maximum/exclusiveMinimum/exclusiveMaximum, enum, description, $ref, items, additionalProperties: false, anyOf with \"auto\" or a range expression)");
            }
            foreach (var onlyInAnyOf in new[] { "const", "format", "pattern" })
            {
                var m = schema.Member(onlyInAnyOf);
                if (m != null)
                    Report(SchemaDiagnostics.UnsupportedKeyword, m.NamePos, $"'{where}': '{onlyInAnyOf}' is only supported inside the two anyOf forms");
            }
        }

        private static string? StringMember(JsonValue schema, string name)
        {
            var m = schema.Member(name);
            return m != null && m.Value.Kind == JsonKind.String ? m.Value.Text : null;
        }

        private string TitleOr(JsonValue schema, string fallback, string where)
        {
            var title = schema.Member("title");
            if (title == null) return fallback;
            if (title.Value.Kind != JsonKind.String || !SyntaxFacts.IsValidIdentifier(title.Value.Text))
            {
                Report(SchemaDiagnostics.BadName, title.Value.Pos, $"'{where}': title {title.Value.ToJson()} is not a valid C# type name");
                return fallback;
            }
            return title.Value.Text;
        }

        private static string? Description(JsonValue schema) => StringMember(schema, "description");

        private void CheckNoExternalType(JsonValue schema, string where)
        {
            var m = schema.Member(ExternalTypeKeyword);
            if (m != null)
                Report(SchemaDiagnostics.UnsupportedKeyword, m.NamePos, $"'{where}': '{ExternalTypeKeyword}' applies to string enums only");
        }

        /// <summary>The C# enum named by <c>x-csharp-type</c> (a dotted full name), or null; reports a malformed one.</summary>
        private string? ExternalType(JsonValue schema, string where)
        {
            var m = schema.Member(ExternalTypeKeyword);
            if (m == null) return null;
            if (m.Value.Kind != JsonKind.String || m.Value.Text.Split('.').Any(p => !SyntaxFacts.IsValidIdentifier(p)) || m.Value.Text.IndexOf('.') < 0)
            {
                Report(SchemaDiagnostics.BadName, m.Value.Pos, $"'{where}': {ExternalTypeKeyword} {m.Value.ToJson()} is not a namespace-qualified C# type name (e.g. \"Rlhf.Core.Losses.LossAggregation\")");
                return null;
            }
            return m.Value.Text;
        }

        private void DeclareEnum(JsonValue schema, string key, string name, string where)
        {
            var external = ExternalType(schema, where);
            if (external != null)
            {
                // One name per concept: the YAML helper is named after the C# enum, and a title may only repeat that name.
                var simple = external.Substring(external.LastIndexOf('.') + 1);
                var title = schema.Member("title");
                if (title != null && title.Value.Kind == JsonKind.String && title.Value.Text != simple)
                    Report(SchemaDiagnostics.BadName, title.Value.Pos, $"'{where}': title \"{title.Value.Text}\" differs from the name of {ExternalTypeKeyword} {external}; drop the title");
                name = simple;
            }
            var e = schema.Member("enum")!;
            var values = new List<string>();
            var members = new List<string>();
            if (e.Value.Kind != JsonKind.Array || e.Value.Items.Count == 0)
            {
                Report(SchemaDiagnostics.BadType, e.Value.Pos, $"'{where}': 'enum' must be a non-empty array");
            }
            else
            {
                foreach (var v in e.Value.Items)
                {
                    if (v.Kind != JsonKind.String) { Report(SchemaDiagnostics.BadType, v.Pos, $"'{where}': a string enum may only list strings, found {v.ToJson()}"); continue; }
                    var member = Identifier(Pascal(v.Text));
                    if (values.Contains(v.Text) || members.Contains(member))
                    {
                        Report(SchemaDiagnostics.BadName, v.Pos, $"'{where}': enum value \"{v.Text}\" repeats or collides with another as C# member '{member}'");
                        continue;
                    }
                    values.Add(v.Text);
                    members.Add(member);
                }
            }
            _enums.Add(new EnumModel(key, name, Description(schema), values.ToEquatableArray(), members.ToEquatableArray(), schema.Pos, external));
        }

        private static string Identifier(string s) =>
            SyntaxFacts.GetKeywordKind(s) != SyntaxKind.None ? "@" + s : s;

        private void DeclareRecord(JsonValue schema, string key, string name, string where)
        {
            var type = schema.Member("type");
            if (type == null || type.Value.Kind != JsonKind.String || type.Value.Text != "object")
                Report(SchemaDiagnostics.BadType, type?.Value.Pos ?? schema.Pos, $"'{where}': an object schema needs \"type\": \"object\"");
            var additional = schema.Member("additionalProperties");
            if (additional == null || additional.Value.Kind != JsonKind.Bool || additional.Value.Bool)
                Report(SchemaDiagnostics.OpenObject, additional?.Value.Pos ?? schema.Pos,
                    $"'{where}': set \"additionalProperties\": false (unknown keys are always errors, and editors must agree)");

            var props = new List<PropertyModel>();
            var requiredNames = new List<string>();
            var required = schema.Member("required");
            if (required != null)
            {
                if (required.Value.Kind != JsonKind.Array)
                    Report(SchemaDiagnostics.BadRequired, required.Value.Pos, $"'{where}': 'required' must be an array of property names");
                else
                    foreach (var r in required.Value.Items)
                    {
                        if (r.Kind != JsonKind.String) { Report(SchemaDiagnostics.BadRequired, r.Pos, $"'{where}': 'required' lists {r.ToJson()}, not a name"); continue; }
                        requiredNames.Add(r.Text);
                    }
            }
            var properties = schema.Member("properties");
            var baseName = name.EndsWith("Settings", StringComparison.Ordinal) && name.Length > 8 ? name.Substring(0, name.Length - 8) : name;
            var csNames = new HashSet<string>();
            if (properties != null && properties.Value.Kind != JsonKind.Object)
                Report(SchemaDiagnostics.BadType, properties.Value.Pos, $"'{where}': 'properties' must be an object");
            else if (properties != null)
            {
                foreach (var p in properties.Value.Members)
                {
                    var propWhere = where == "(root)" ? p.Name : $"{where}.{p.Name}";
                    if (p.Value.Kind != JsonKind.Object) { Report(SchemaDiagnostics.BadType, p.Value.Pos, $"'{propWhere}': a property schema must be an object"); continue; }
                    CheckKeywords(p.Value, propWhere);
                    var csName = Identifier(Pascal(p.Name));
                    if (csName == name || ReservedMembers.Contains(csName) || !csNames.Add(csName))
                    {
                        Report(SchemaDiagnostics.BadName, p.NamePos, $"'{propWhere}': key '{p.Name}' maps to C# member '{csName}', which collides with another member");
                        continue;
                    }
                    var vt = ParseType(p.Value, $"{key}/properties/{p.Name}", baseName + Pascal(p.Name), propWhere);
                    if (vt == null) continue;
                    var def = p.Value.Member("default")?.Value;
                    var isRequired = requiredNames.Contains(p.Name);
                    if (isRequired && def != null)
                        Report(SchemaDiagnostics.BadDefault, def.Pos, $"'{propWhere}': a required key cannot have a default");
                    var resolvedMember = p.Value.Member(ResolvedKeyword);
                    string? resolved = null;
                    if (resolvedMember != null)
                    {
                        if (resolvedMember.Value.Kind != JsonKind.String || resolvedMember.Value.Text.Trim().Length == 0)
                            Report(SchemaDiagnostics.BadConstraint, resolvedMember.Value.Pos, $"'{propWhere}': {ResolvedKeyword} must be a string saying what sets the key");
                        else if (isRequired || def != null)
                            Report(SchemaDiagnostics.BadConstraint, resolvedMember.NamePos, $"'{propWhere}': {ResolvedKeyword} is for a key that is neither required nor defaulted");
                        else resolved = resolvedMember.Value.Text;
                    }
                    props.Add(new PropertyModel(p.Name, csName, vt, isRequired, def, Description(p.Value), p.NamePos, resolved));
                }
            }
            foreach (var r in requiredNames)
                if (!props.Any(p => p.YamlName == r) && (properties == null || properties.Value.Member(r) == null))
                    Report(SchemaDiagnostics.BadRequired, required!.Value.Pos, $"'{where}': required key '{r}' is not among the properties");
            _records.Add(new RecordModel(key, name, Description(schema), props.ToEquatableArray(), schema.Pos));
        }
    }
}
