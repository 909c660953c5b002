import CCurl
import DroverCore
import DroverIO

/// Pins a curl handle to addresses the `AddressRule` passed: a resolve entry so that curl asks no
/// resolver of its own, and a socket callback that refuses any other address (should curl read the
/// URL's host differently than we did). Also: no proxy from the environment, http(s) only. The
/// handle's owner keeps this object alive for the transfer (it is the callback's context).
/// Unchecked: the resolve list is written once, here, and freed in deinit.
public final class CurlPin: @unchecked Sendable {
    public let addresses: Set<IPAddress>
    private let resolve: UnsafeMutablePointer<curl_slist>?

    public init(_ curl: UnsafeMutableRawPointer, host: String, port: Int, addresses: [IPAddress], protocols: String) {
        self.addresses = Set(addresses)
        let name = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let list = addresses.map { $0.isV4 ? "\($0)" : "[\($0)]" }.joined(separator: ",")
        resolve = curl_slist_append(nil, "\(name):\(port):\(list)")
        drover_curl_set_slist(curl, CURLOPT_RESOLVE, resolve)
        drover_curl_set_string(curl, CURLOPT_PROXY, "")
        drover_curl_set_string(curl, CURLOPT_PROTOCOLS_STR, protocols)
        drover_curl_set_opensocket_callback(curl) { context, _, address in
            let pin = Unmanaged<CurlPin>.fromOpaque(context!).takeUnretainedValue()
            guard let address, let target = withUnsafePointer(to: &address.pointee.addr, { IPAddress(sockaddr: $0) }),
                pin.addresses.contains(target)
            else { return CURL_SOCKET_BAD }
            return socket(address.pointee.family, address.pointee.socktype | Int32(SOCK_CLOEXEC.rawValue), address.pointee.protocol)
        }
        drover_curl_set_pointer(curl, CURLOPT_OPENSOCKETDATA, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { curl_slist_free_all(resolve) }
}
