#[cfg(test)]
mod scratch {
    use tigateway_model::Config;
    #[test]
    fn fmt() {
        let texts = [
            "server:\n  listeners:\n    - address: 1.2.3.4:80\n      tlz: 1\n",
            "routes:\n  - id: a\n    uri: http://x\n    predicatez: []\n",
            "routes:\n  - id: a\n    uri: http://x\n    predicates:\n      - name: Path\n        argz: {}\n",
            "serverr: 1\n",
            "a: [\n",
            "a: 1\n---\nb: 2\n",
            "{\"routes\": [{\"id\": \"a\", \"uri\": \"x\", \"predicatez\": 1}]}",
        ];
        for t in texts {
            let r: Result<Config, _> = serde_yaml::from_str(t);
            let e = r.unwrap_err();
            println!("PLAIN: {e} | loc={:?}", e.location().map(|l| (l.line(), l.column())));
            let r: Result<Config, _> = serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(t));
            let e = r.unwrap_err();
            println!("P2E: path={} inner={} loc={:?}", e.path(), e.inner(), e.inner().location().map(|l| (l.line(), l.column())));
        }
        let t = "{\"routes\": [{\"id\": \"a\", \"uri\": \"x\", \"predicatez\": 1}]}";
        let r: Result<Config, _> = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(t));
        let e = r.unwrap_err();
        println!("JSON: path={} inner={} {}:{}", e.path(), e.inner(), e.inner().line(), e.inner().column());
        let v: serde_yaml::Value = serde_yaml::from_str("a: 1").unwrap();
        let r: Result<tigateway_model::RouteDefinition, _> = serde_path_to_error::deserialize(v);
        let e = r.unwrap_err();
        println!("VAL: path={} inner={}", e.path(), e.inner());
    }
}
