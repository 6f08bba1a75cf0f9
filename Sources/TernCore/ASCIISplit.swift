extension StringProtocol {
    /// The pieces between occurrences of an ASCII separator, found by walking UTF-8 bytes.
    /// `split(separator:)` with a `Character` walks grapheme clusters: about ten times the work,
    /// which made splitting paths and checkpoint lines a sixth of a simulation's instructions.
    /// A separator byte never falls inside a multi-byte scalar, so every piece is valid text.
    public func split(ascii separator: Unicode.Scalar, omittingEmptySubsequences: Bool = true) -> [Substring] {
        precondition(separator.isASCII, "splitting by bytes needs an ASCII separator")
        let byte = UInt8(separator.value)
        var pieces: [Substring] = []
        let bytes = Substring(self).utf8
        var pieceStart = bytes.startIndex
        var index = pieceStart
        while index != bytes.endIndex {
            if bytes[index] == byte {
                if !omittingEmptySubsequences || pieceStart != index { pieces.append(Substring(bytes[pieceStart..<index])) }
                pieceStart = bytes.index(after: index)
            }
            bytes.formIndex(after: &index)
        }
        if !omittingEmptySubsequences || pieceStart != bytes.endIndex { pieces.append(Substring(bytes[pieceStart...])) }
        return pieces
    }
}
