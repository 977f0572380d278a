using System.Text;

namespace Rlhf.Generators
{
    /// <summary>A minimal indented source writer.</summary>
    public sealed class IndentedWriter
    {
        private readonly StringBuilder _sb = new StringBuilder();
        private int _depth;

        /// <summary>Writes one line at the current indentation (empty line when no text).</summary>
        public IndentedWriter Line(string text = "")
        {
            if (text.Length > 0) _sb.Append(' ', _depth * 4).Append(text);
            _sb.Append('\n');
            return this;
        }

        /// <summary>Writes an opening brace and indents.</summary>
        public IndentedWriter Open(string? header = null)
        {
            if (header != null) Line(header);
            Line("{");
            _depth++;
            return this;
        }

        /// <summary>Dedents and writes a closing brace (with an optional suffix such as ';').</summary>
        public IndentedWriter Close(string suffix = "")
        {
            _depth--;
            return Line("}" + suffix);
        }

        /// <summary>The text written so far.</summary>
        public override string ToString() => _sb.ToString();
    }
}
