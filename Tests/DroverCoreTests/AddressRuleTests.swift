import DroverCore
import Testing

/// The address rule without I/O: which resolved addresses a tenant's connection may reach.
struct AddressRuleTests {
    static func address(_ text: String) -> IPAddress { IPAddress(text)! }

    @Test func internalRangesAreRefusedAndPublicOnesPass() {
        let rule = AddressRule()
        for text in [
            "127.0.0.1", "127.1.2.3", "10.0.0.5", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "169.254.1.1",
            "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1", "ff02::1",
            // IPv6 forms that carry an inward IPv4 address.
            "::ffff:127.0.0.1", "::ffff:7f00:1", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "::ffff:169.254.169.254",
        ] {
            #expect(rule.refusal(for: Self.address(text)) != nil, "\(text) passed")
        }
        for text in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:93.184.216.34", "2002:5db8:d822::1"] {
            #expect(rule.refusal(for: Self.address(text)) == nil, "\(text) refused")
        }
        #expect(rule.refusal(for: Self.address("169.254.169.254"))?.contains("metadata") == true)
    }

    @Test func onlyTheOperatorOpensInternalRanges() throws {
        let rule = AddressRule(allowedInternal: try AddressRule.parseAllowed("127.0.0.2, 10.1.0.0/16,fd00::/8"))
        #expect(rule.refusal(for: Self.address("127.0.0.2")) == nil)
        #expect(rule.refusal(for: Self.address("::ffff:127.0.0.2")) == nil, "the mapped form of an opened address")
        #expect(rule.refusal(for: Self.address("127.0.0.3")) != nil)
        #expect(rule.refusal(for: Self.address("10.1.200.3")) == nil)
        #expect(rule.refusal(for: Self.address("10.2.0.1")) != nil)
        #expect(rule.refusal(for: Self.address("fd12::1")) == nil)
        #expect(throws: DroverError.self) { try AddressRule.parseAllowed("10.0.0.0/33") }
        #expect(throws: DroverError.self) { try AddressRule.parseAllowed("localhost") }
    }

    @Test func theHostsOwnAddressesAreInternalWhateverTheirRange() {
        let rule = AddressRule(ownAddresses: [Self.address("93.184.216.34")])
        #expect(rule.refusal(for: Self.address("93.184.216.34"))?.contains("this host") == true)
        #expect(rule.refusal(for: Self.address("::ffff:93.184.216.34")) != nil)
    }

    /// Literals are strict: the odd numeric forms are names, which only a resolver turns into
    /// addresses (see OutboundResolverTests for what they resolve to).
    @Test func literalsAreStrict() {
        for text in ["2130706433", "127.1", "0177.0.0.1", "0", "localhost", "127.0.0.1.", "1.2.3.4/8"] {
            #expect(IPAddress(text) == nil, "\(text)")
        }
        #expect(IPAddress("[::1]")?.description == "::1")
        #expect(CIDR("192.168.0.0/16")!.contains(Self.address("192.168.44.1")))
    }

    @Test func ceilingsRefuseWhatIsAboveThem() throws {
        let ceilings = try ResourceCeilings(parsing: "memory_mb=4096,processes=64")
        #expect(ceilings.violation(in: ["memory_mb": 1e9])?.contains("memory_mb") == true)
        #expect(ceilings.violation(in: ["processes": 65]) != nil)
        #expect(ceilings.violation(in: ["memory_mb": 4096, "processes": 64, "timeout_s": 60]) == nil)
        #expect(ResourceCeilings().violation(in: ["timeout_s": 1e9, "cpu_s": 10]) != nil)
        #expect(throws: DroverError.self) { try ResourceCeilings(parsing: "gpus=2") }
    }
}
