//! `netkit free-port`: ports bindable now, outside the ephemeral range by default, each one
//! verified here by a real bind.

mod support;

use support::cli::netkit;

#[derive(serde::Deserialize)]
struct Free {
    ports: Vec<u16>,
    proto: String,
}

fn ephemeral() -> (u16, u16) {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn default_ports_are_free_and_outside_the_ephemeral_range() {
    let (code, out, err) = netkit(&["free-port", "--count", "3"]);
    assert_eq!(code, 0, "{err}");
    let ports: Vec<u16> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ports.len(), 3);
    let (lo, hi) = ephemeral();
    for p in &ports {
        assert!(!(lo..=hi).contains(p) && *p >= 1024, "{p}");
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok(),
            "{p} not free"
        );
    }
    assert!(err.contains("ip_local_port_range"), "{err}");
}

#[test]
fn range_and_udp_and_taken_ports_are_skipped() {
    let l = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let p = l.local_addr().unwrap().port();
    let range = format!("{p}-{p}");
    let (code, out, _) = netkit(&["free-port", "--udp", "--range", &range, "--json"]);
    assert_eq!(code, 1);
    let f: Free = serde_json::from_str(&out).unwrap();
    assert!(f.ports.is_empty());
    assert_eq!(f.proto, "udp");
    drop(l);
    let (code, out, _) = netkit(&["free-port", "--udp", "--range", &range, "--json"]);
    assert_eq!(code, 0);
    let f: Free = serde_json::from_str(&out).unwrap();
    assert_eq!(f.ports, vec![p]);
    let (code, _, err) = netkit(&["free-port", "--range", "9-1"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("netkit: "));
}
