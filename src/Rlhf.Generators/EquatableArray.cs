using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;

namespace Rlhf.Generators
{
    /// <summary>An immutable array with value equality, so pipeline models compare by content and steps cache.</summary>
    public readonly struct EquatableArray<T> : IEquatable<EquatableArray<T>>, IReadOnlyList<T>
        where T : IEquatable<T>
    {
        private readonly ImmutableArray<T> _items;

        /// <summary>Wraps an immutable array.</summary>
        public EquatableArray(ImmutableArray<T> items) => _items = items;

        /// <summary>The empty array.</summary>
        public static EquatableArray<T> Empty => new EquatableArray<T>(ImmutableArray<T>.Empty);

        /// <summary>The wrapped items (never default).</summary>
        public ImmutableArray<T> Items => _items.IsDefault ? ImmutableArray<T>.Empty : _items;

        /// <summary>Number of items.</summary>
        public int Count => Items.Length;

        /// <summary>Item at an index.</summary>
        public T this[int index] => Items[index];

        /// <summary>Element-wise equality.</summary>
        public bool Equals(EquatableArray<T> other) => Items.SequenceEqual(other.Items);

        /// <inheritdoc />
        public override bool Equals(object? obj) => obj is EquatableArray<T> other && Equals(other);

        /// <inheritdoc />
        public override int GetHashCode()
        {
            unchecked
            {
                var hash = 17;
                foreach (var item in Items) hash = hash * 31 + (item is null ? 0 : item.GetHashCode());
                return hash;
            }
        }

        /// <summary>Enumerates the items.</summary>
        public ImmutableArray<T>.Enumerator GetEnumerator() => Items.GetEnumerator();

        IEnumerator<T> IEnumerable<T>.GetEnumerator() => ((IEnumerable<T>)Items).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => ((IEnumerable)Items).GetEnumerator();

        /// <summary>Value equality operator.</summary>
        public static bool operator ==(EquatableArray<T> left, EquatableArray<T> right) => left.Equals(right);

        /// <summary>Value inequality operator.</summary>
        public static bool operator !=(EquatableArray<T> left, EquatableArray<T> right) => !left.Equals(right);
    }

    /// <summary>Helpers to build equatable arrays.</summary>
    public static class EquatableArray
    {
        /// <summary>Copies a sequence into an equatable array.</summary>
        public static EquatableArray<T> ToEquatableArray<T>(this IEnumerable<T> items) where T : IEquatable<T>
            => new EquatableArray<T>(items.ToImmutableArray());
    }
}
