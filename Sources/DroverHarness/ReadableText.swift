/// HTML reduced to the text a person would read: scripts, styles and tags dropped, block elements
/// as line breaks, entities decoded, whitespace collapsed. Pure, for `web_fetch`.
public enum ReadableText {
    public static func from(html: String) -> String {
        var text = ""
        var index = html.startIndex
        let lower = html.lowercased()
        func skip(past marker: String) {
            if let range = lower.range(of: marker, range: index..<lower.endIndex) { index = range.upperBound } else { index = html.endIndex }
        }
        while index < html.endIndex {
            if html[index] == "<" {
                let rest = lower[index...]
                if rest.hasPrefix("<script") { skip(past: "</script>"); continue }
                if rest.hasPrefix("<style") { skip(past: "</style>"); continue }
                if rest.hasPrefix("<!--") { skip(past: "-->"); continue }
                guard let close = html[index...].firstIndex(of: ">") else { break }
                let tag = lower[lower.index(after: index)..<close].drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber }
                if ["p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section", "article", "title", "header", "footer", "table"]
                    .contains(String(tag)) {
                    text += "\n"
                }
                index = html.index(after: close)
                continue
            }
            text.append(html[index])
            index = html.index(after: index)
        }
        let decoded = decodeEntities(text)
        return decoded.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).joined(separator: " ") }
            .filter { !$0.isEmpty }
            .joined(separator: "\n")
    }

    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let named = ["&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&#39;": "'", "&apos;": "'", "&nbsp;": " "]
        var out = text
        for (entity, value) in named where entity != "&amp;" { out = out.replacingOccurrences(of: entity, with: value) }
        return out.replacingOccurrences(of: "&amp;", with: "&")
    }
}
