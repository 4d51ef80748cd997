//! The cluster harness itself: six nodes, every slot served, replicas attached.

use dtrsfw_test_support::Cluster;

#[test]
fn cluster_starts_healthy_with_three_primaries_and_three_replicas() {
    let cluster = Cluster::start();
    assert_eq!(cluster.urls().len(), 6);
    let mut primaries = std::collections::BTreeSet::new();
    for slot in [0u16, 5461, 5462, 10922, 10923, 16383] {
        primaries.insert(cluster.primary_for_slot(slot));
    }
    assert_eq!(primaries.len(), 3, "slots spread over three primaries");
    let mut conn = cluster.nodes()[0].connection();
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
    assert!(
        info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6"),
        "{info}"
    );
}
