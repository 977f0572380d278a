using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Rlhf.Generators
{
    /// <summary>A position in a text: offset, length and 0-based line and column.</summary>
    public readonly record struct TextPos(int Offset, int Length, int Line, int Column);

    /// <summary>The kinds of JSON values.</summary>
    public enum JsonKind { Null, Bool, Number, String, Array, Object }

    /// <summary>One JSON value with its position (equatable, so it can live in pipeline models).</summary>
    public sealed record JsonValue(
        JsonKind Kind,
        string Text,
        bool Bool,
        double Number,
        EquatableArray<JsonValue> Items,
        EquatableArray<JsonMember> Members,
        TextPos Pos)
    {
        /// <summary>The member named <paramref name="name"/> of an object, or null.</summary>
        public JsonMember? Member(string name)
        {
            foreach (var m in Members) if (m.Name == name) return m;
            return null;
        }

        /// <summary>Whether a number has no fraction and fits a 64-bit integer.</summary>
        public bool IsInteger => Kind == JsonKind.Number && Math.Floor(Number) == Number && Math.Abs(Number) < 9.2e18;

        /// <summary>Canonical JSON text of the value (no positions), for messages and docs.</summary>
        public string ToJson()
        {
            switch (Kind)
            {
                case JsonKind.Null: return "null";
                case JsonKind.Bool: return Bool ? "true" : "false";
                case JsonKind.Number: return Text;
                case JsonKind.String: return Quote(Text);
                case JsonKind.Array:
                    var items = new List<string>();
                    foreach (var i in Items) items.Add(i.ToJson());
                    return "[" + string.Join(", ", items) + "]";
                default:
                    var members = new List<string>();
                    foreach (var m in Members) members.Add(Quote(m.Name) + ": " + m.Value.ToJson());
                    return "{" + string.Join(", ", members) + "}";
            }
        }

        /// <summary>JSON string literal of a text.</summary>
        public static string Quote(string s)
        {
            var sb = new StringBuilder("\"");
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < ' ') sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            return sb.Append('"').ToString();
        }
    }

    /// <summary>One member of a JSON object, with the position of its name.</summary>
    public sealed record JsonMember(string Name, TextPos NamePos, JsonValue Value);

    /// <summary>A JSON syntax error with its position.</summary>
    public sealed class JsonParseException : Exception
    {
        /// <summary>Where the error is.</summary>
        public TextPos Pos { get; }

        /// <summary>Creates the error.</summary>
        public JsonParseException(string message, TextPos pos) : base(message) => Pos = pos;
    }

    /// <summary>A small strict JSON parser (RFC 8259) that keeps positions; netstandard2.0 has no System.Text.Json.</summary>
    public sealed class JsonParser
    {
        private readonly string _s;
        private int _i;
        private int _line;
        private int _lineStart;

        private JsonParser(string s) => _s = s;

        /// <summary>Parses a whole document; throws <see cref="JsonParseException"/> on malformed input.</summary>
        public static JsonValue Parse(string text)
        {
            var p = new JsonParser(text);
            p.SkipWs();
            var v = p.Value();
            p.SkipWs();
            if (p._i < p._s.Length) throw p.Error("unexpected text after the JSON value");
            return v;
        }

        private TextPos Here(int length = 1) => new TextPos(_i, length, _line, _i - _lineStart);

        private JsonParseException Error(string message) => new JsonParseException(message, Here());

        private void SkipWs()
        {
            while (_i < _s.Length)
            {
                var c = _s[_i];
                if (c == '\n') { _i++; _line++; _lineStart = _i; }
                else if (c == ' ' || c == '\t' || c == '\r') _i++;
                else break;
            }
        }

        private JsonValue Make(JsonKind kind, TextPos start, string text = "", bool b = false, double n = 0,
            EquatableArray<JsonValue> items = default, EquatableArray<JsonMember> members = default)
            => new JsonValue(kind, text, b, n, items.Count == 0 ? EquatableArray<JsonValue>.Empty : items,
                members.Count == 0 ? EquatableArray<JsonMember>.Empty : members,
                new TextPos(start.Offset, _i - start.Offset, start.Line, start.Column));

        private JsonValue Value()
        {
            if (_i >= _s.Length) throw Error("unexpected end of input, expected a value");
            var start = Here();
            var c = _s[_i];
            switch (c)
            {
                case '{': return Obj(start);
                case '[': return Arr(start);
                case '"': return Make(JsonKind.String, start, Str());
                case 't': Word("true"); return Make(JsonKind.Bool, start, "true", true);
                case 'f': Word("false"); return Make(JsonKind.Bool, start, "false");
                case 'n': Word("null"); return Make(JsonKind.Null, start, "null");
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return Num(start);
                    throw Error($"unexpected character '{c}'");
            }
        }

        private void Word(string w)
        {
            if (string.CompareOrdinal(_s, _i, w, 0, w.Length) != 0) throw Error($"expected '{w}'");
            _i += w.Length;
        }

        private JsonValue Num(TextPos start)
        {
            var b = _i;
            if (_s[_i] == '-') _i++;
            Digits();
            if (_i < _s.Length && _s[_i] == '.') { _i++; Digits(); }
            if (_i < _s.Length && (_s[_i] == 'e' || _s[_i] == 'E'))
            {
                _i++;
                if (_i < _s.Length && (_s[_i] == '+' || _s[_i] == '-')) _i++;
                Digits();
            }
            var text = _s.Substring(b, _i - b);
            var n = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            return Make(JsonKind.Number, start, text, n: n);
        }

        private void Digits()
        {
            var b = _i;
            while (_i < _s.Length && _s[_i] >= '0' && _s[_i] <= '9') _i++;
            if (_i == b) throw Error("expected a digit");
        }

        private string Str()
        {
            _i++; // opening quote
            var sb = new StringBuilder();
            while (true)
            {
                if (_i >= _s.Length) throw Error("unterminated string");
                var c = _s[_i++];
                if (c == '"') return sb.ToString();
                if (c == '\n') { _i--; throw Error("unterminated string"); }
                if (c != '\\') { sb.Append(c); continue; }
                if (_i >= _s.Length) throw Error("unterminated string");
                var e = _s[_i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (_i + 4 > _s.Length || !int.TryParse(_s.Substring(_i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code))
                            throw Error("bad \\u escape");
                        sb.Append((char)code);
                        _i += 4;
                        break;
                    default: _i--; throw Error($"bad escape '\\{e}'");
                }
            }
        }

        private JsonValue Arr(TextPos start)
        {
            _i++;
            var items = new List<JsonValue>();
            SkipWs();
            if (_i < _s.Length && _s[_i] == ']') { _i++; return Make(JsonKind.Array, start); }
            while (true)
            {
                SkipWs();
                items.Add(Value());
                SkipWs();
                if (_i >= _s.Length) throw Error("unterminated array, expected ',' or ']'");
                if (_s[_i] == ',') { _i++; continue; }
                if (_s[_i] == ']') { _i++; break; }
                throw Error("expected ',' or ']'");
            }
            return Make(JsonKind.Array, start, items: items.ToEquatableArray());
        }

        private JsonValue Obj(TextPos start)
        {
            _i++;
            var members = new List<JsonMember>();
            var seen = new HashSet<string>();
            SkipWs();
            if (_i < _s.Length && _s[_i] == '}') { _i++; return Make(JsonKind.Object, start); }
            while (true)
            {
                SkipWs();
                if (_i >= _s.Length || _s[_i] != '"') throw Error("expected a member name in double quotes");
                var namePos = Here();
                var name = Str();
                namePos = new TextPos(namePos.Offset, _i - namePos.Offset, namePos.Line, namePos.Column);
                if (!seen.Add(name)) throw new JsonParseException($"duplicate member \"{name}\"", namePos);
                SkipWs();
                if (_i >= _s.Length || _s[_i] != ':') throw Error("expected ':'");
                _i++;
                SkipWs();
                members.Add(new JsonMember(name, namePos, Value()));
                SkipWs();
                if (_i >= _s.Length) throw Error("unterminated object, expected ',' or '}'");
                if (_s[_i] == ',') { _i++; continue; }
                if (_s[_i] == '}') { _i++; break; }
                throw Error("expected ',' or '}'");
            }
            return Make(JsonKind.Object, start, members: members.ToEquatableArray());
        }
    }
}
