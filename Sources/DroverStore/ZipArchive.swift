/// A zip archive of stored (uncompressed) files, as `skills.versions.download` answers: what the
/// SDK's skill download extracts (`zipfile`). Stored entries keep the writer small and exact; a
/// skill's files are small and Postgres already compressed them at rest. Pure.
public enum ZipArchive {
    /// The archive of `files` (paths as they should appear, `/`-separated, no leading `/`).
    public static func stored(_ files: [(path: String, bytes: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for file in files {
            let name = Array(file.path.utf8)
            let crc = crc32(file.bytes)
            let offset = UInt32(out.count)
            // Local file header: version 2.0, UTF-8 names (flag bit 11), stored, no time.
            out += le32(0x0403_4B50) + le16(20) + le16(0x0800) + le16(0) + le16(0) + le16(0x21)
            out += le32(crc) + le32(UInt32(file.bytes.count)) + le32(UInt32(file.bytes.count)) + le16(UInt16(name.count)) + le16(0)
            out += name + file.bytes
            central += le32(0x0201_4B50) + le16(0x0314) + le16(20) + le16(0x0800) + le16(0) + le16(0) + le16(0x21)
            central += le32(crc) + le32(UInt32(file.bytes.count)) + le32(UInt32(file.bytes.count)) + le16(UInt16(name.count))
            // Extra, comment, disk, internal attributes; external: a regular file, mode 0644.
            central += le16(0) + le16(0) + le16(0) + le16(0) + le32(0o100644 << 16) + le32(offset) + name
        }
        let start = UInt32(out.count)
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(UInt16(files.count)) + le16(UInt16(files.count))
        out += le32(UInt32(central.count)) + le32(start) + le16(0)
        return out
    }

    /// CRC-32 (IEEE 802.3, as zip uses it).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    private static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    private static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }
}
