using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Rlhf.Generators
{
    /// <summary>The value-type half of the parser: <c>$ref</c>, <c>type</c>, bounds and <c>anyOf</c> to the model's value types.</summary>
    public sealed partial class SchemaParser
    {
        private string ResolveRef(string reference) =>
            reference.StartsWith("#", StringComparison.Ordinal) ? _file + reference
            : reference.IndexOf('#') >= 0 ? FileNameOf(reference.Substring(0, reference.IndexOf('#'))) + reference.Substring(reference.IndexOf('#'))
            : FileNameOf(reference) + "#";

        private ValueType? ParseType(JsonValue schema, string key, string inlineName, string where)
        {
            var none = EquatableArray<long>.Empty;
            var refMember = schema.Member("$ref");
            if (refMember != null)
            {
                if (refMember.Value.Kind != JsonKind.String) { Report(SchemaDiagnostics.UnresolvedRef, refMember.Value.Pos, $"'{where}': $ref must be a string"); return null; }
                foreach (var m in schema.Members)
                    if (m.Name != "$ref" && m.Name != "description" && m.Name != "default" && m.Name != "title" && m.Name != "$comment" && m.Name != ResolvedKeyword)
                        Report(SchemaDiagnostics.UnsupportedKeyword, m.NamePos, $"'{where}': '{m.Name}' beside $ref is not supported (only description and default)");
                return new ValueType(ValueKind.Ref, ResolveRef(refMember.Value.Text), null, null, null, null, null, none, false, false);
            }
            var anyOf = schema.Member("anyOf");
            if (anyOf != null) return ParseAnyOf(schema, anyOf, key, inlineName, where);

            var typeMember = schema.Member("type");
            if (typeMember == null) { Report(SchemaDiagnostics.BadType, schema.Pos, $"'{where}': missing \"type\""); return null; }
            if (typeMember.Value.Kind != JsonKind.String)
            {
                Report(SchemaDiagnostics.BadType, typeMember.Value.Pos, $"'{where}': \"type\" must be one string (object, string, integer, number, boolean, array); use anyOf for \"auto\"");
                return null;
            }
            var type = typeMember.Value.Text;
            if (!(type == "string" && schema.Member("enum") != null)) CheckNoExternalType(schema, where);
            var hasRange = schema.Member("minimum") != null || schema.Member("maximum") != null || schema.Member("exclusiveMinimum") != null || schema.Member("exclusiveMaximum") != null;
            if (hasRange && type != "integer" && type != "number")
                Report(SchemaDiagnostics.BadConstraint, schema.Pos, $"'{where}': minimum/maximum only apply to integer and number, not {type}");
            var enumMember = schema.Member("enum");
            if (enumMember != null && type != "string" && type != "integer")
                Report(SchemaDiagnostics.BadConstraint, enumMember.Value.Pos, $"'{where}': enum is supported on string and integer only");
            if (schema.Member("items") != null && type != "array")
                Report(SchemaDiagnostics.BadConstraint, schema.Member("items")!.Value.Pos, $"'{where}': 'items' only applies to arrays");
            if (schema.Member("properties") != null && type != "object")
                Report(SchemaDiagnostics.BadConstraint, schema.Member("properties")!.Value.Pos, $"'{where}': 'properties' only applies to objects");
            switch (type)
            {
                case "string":
                    if (enumMember != null)
                    {
                        DeclareEnum(schema, key, TitleOr(schema, inlineName, where), where);
                        return new ValueType(ValueKind.Ref, key, null, null, null, null, null, none, false, false);
                    }
                    return new ValueType(ValueKind.String, null, null, null, null, null, null, none, false, false);
                case "boolean":
                    return new ValueType(ValueKind.Boolean, null, null, null, null, null, null, none, false, false);
                case "integer":
                case "number":
                {
                    var ints = new List<long>();
                    if (enumMember != null && type == "integer")
                    {
                        if (enumMember.Value.Kind != JsonKind.Array || enumMember.Value.Items.Count == 0)
                            Report(SchemaDiagnostics.BadConstraint, enumMember.Value.Pos, $"'{where}': 'enum' must be a non-empty array");
                        else
                            foreach (var v in enumMember.Value.Items)
                                if (v.IsInteger) ints.Add((long)v.Number);
                                else Report(SchemaDiagnostics.BadConstraint, v.Pos, $"'{where}': an integer enum may only list integers, found {v.ToJson()}");
                    }
                    var min = Bound(schema, "minimum", where);
                    var max = Bound(schema, "maximum", where);
                    var exMin = Bound(schema, "exclusiveMinimum", where);
                    var exMax = Bound(schema, "exclusiveMaximum", where);
                    if ((min ?? exMin) is double lo && (max ?? exMax) is double hi && lo > hi)
                        Report(SchemaDiagnostics.BadConstraint, schema.Pos, $"'{where}': the lower bound {lo} is above the upper bound {hi}");
                    return new ValueType(type == "integer" ? ValueKind.Integer : ValueKind.Number, null, null, min, max, exMin, exMax, ints.ToEquatableArray(), false, false);
                }
                case "array":
                {
                    var items = schema.Member("items");
                    if (items == null || items.Value.Kind != JsonKind.Object)
                    {
                        Report(SchemaDiagnostics.BadType, items?.Value.Pos ?? schema.Pos, $"'{where}': an array needs an 'items' schema object");
                        return null;
                    }
                    CheckKeywords(items.Value, where + "[]");
                    var item = ParseType(items.Value, key + "/items", inlineName + "Item", where + "[]");
                    if (item == null) return null;
                    if (item.Kind == ValueKind.List) { Report(SchemaDiagnostics.BadType, items.Value.Pos, $"'{where}': lists of lists are not supported"); return null; }
                    return new ValueType(ValueKind.List, null, item, null, null, null, null, none, false, false);
                }
                case "object":
                    DeclareRecord(schema, key, TitleOr(schema, inlineName, where), where);
                    return new ValueType(ValueKind.Ref, key, null, null, null, null, null, none, false, false);
                default:
                    Report(SchemaDiagnostics.BadType, typeMember.Value.Pos, $"'{where}': unknown type \"{type}\" (expected object, string, integer, number, boolean or array)");
                    return null;
            }
        }

        private double? Bound(JsonValue schema, string name, string where)
        {
            var m = schema.Member(name);
            if (m == null) return null;
            if (m.Value.Kind != JsonKind.Number)
            {
                Report(SchemaDiagnostics.BadConstraint, m.Value.Pos, $"'{where}': '{name}' must be a number, found {m.Value.ToJson()}");
                return null;
            }
            return m.Value.Number;
        }

        private ValueType? ParseAnyOf(JsonValue schema, JsonMember anyOf, string key, string inlineName, string where)
        {
            foreach (var m in schema.Members)
                if (m.Name != "anyOf" && m.Name != "description" && m.Name != "default" && m.Name != "title" && m.Name != "$comment" && m.Name != "examples" && m.Name != ResolvedKeyword)
                    Report(SchemaDiagnostics.UnsupportedKeyword, m.NamePos, $"'{where}': '{m.Name}' beside anyOf is not supported (put it inside a branch)");
            const string forms = "anyOf supports two forms: [<integer|number|boolean schema>, {\"const\": \"auto\"}] and [<array of integer>, {\"type\": \"string\", \"format\": \"range-expression\"}]";
            if (anyOf.Value.Kind != JsonKind.Array || anyOf.Value.Items.Count != 2 || anyOf.Value.Items.Any(i => i.Kind != JsonKind.Object))
            {
                Report(SchemaDiagnostics.BadAnyOf, anyOf.Value.Pos, $"'{where}': {forms}");
                return null;
            }
            var main = anyOf.Value.Items[0];
            var alt = anyOf.Value.Items[1];
            var constMember = alt.Member("const");
            if (constMember != null && constMember.Value.Kind == JsonKind.String && constMember.Value.Text == "auto" && alt.Members.Count == 1)
            {
                CheckBranch(main, where);
                var t = ParseType(main, key, inlineName, where);
                if (t == null) return null;
                if (t.Kind != ValueKind.Integer && t.Kind != ValueKind.Number && t.Kind != ValueKind.Boolean)
                {
                    Report(SchemaDiagnostics.BadAnyOf, main.Pos, $"'{where}': \"auto\" may only be combined with integer, number or boolean");
                    return null;
                }
                return t with { AllowAuto = true };
            }
            if (StringMember(alt, "type") == "string" && StringMember(alt, "format") == "range-expression"
                && alt.Members.All(m => m.Name == "type" || m.Name == "format" || m.Name == "pattern" || m.Name == "description"))
            {
                CheckBranch(main, where);
                var t = ParseType(main, key, inlineName, where);
                if (t == null) return null;
                if (t.Kind != ValueKind.List || t.Item!.Kind != ValueKind.Integer)
                {
                    Report(SchemaDiagnostics.BadAnyOf, main.Pos, $"'{where}': a range expression may only stand for an array of integers");
                    return null;
                }
                return t with { AllowRange = true };
            }
            Report(SchemaDiagnostics.BadAnyOf, anyOf.Value.Pos, $"'{where}': {forms}");
            return null;
        }

        private void CheckBranch(JsonValue branch, string where)
        {
            foreach (var m in branch.Members)
                if (!Keywords.Contains(m.Name) || m.Name == "const" || m.Name == "format" || m.Name == "pattern" || m.Name == "default")
                    Report(SchemaDiagnostics.UnsupportedKeyword, m.NamePos, $"'{where}': '{m.Name}' is not supported inside this anyOf branch");
        }
    }
}
