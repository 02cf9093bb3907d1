import Foundation
@testable import NekoModel
import Testing

func writeTemp(_ text: String, name: String = "config.json") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-cfg-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// Sources/NekoModel/README.md's NekoMind1.5-Base config.
let nekoMindConfig = """
{"hidden_size": 1024, "num_hidden_layers": 18, "num_attention_heads": 8, "num_key_value_heads": 4,
 "head_dim": 128, "intermediate_size": 2816, "moe_intermediate_size": 768,
 "shared_expert_intermediate_size": 768, "num_experts": 32, "num_experts_per_tok": 4,
 "first_k_dense_replace": 2, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
 "vocab_size": 32006, "tie_word_embeddings": true, "eos_token_id": [2, 32001]}
"""

@Suite struct ConfigTests {
    @Test func nekoMindParameterCountsMatchTheModelCard() throws {
        let config = try ModelConfig.load(path: try writeTemp(nekoMindConfig))
        let count = config.parameterCount()
        #expect(count.total == 1_352_990_208)
        // Active: embedding, attention, dense MLPs, and per MoE layer router + shared + 4 of 32 experts.
        #expect(count.active == 296_025_600)
        #expect(config.moeLayers == Array(2..<18))
        #expect(config.eosTokenIds == [2, 32001])
    }

    @Test func anImpossibleKVCacheIsAnErrorNotACrash() throws {
        let config = try ModelConfig.load(path: try writeTemp("""
            {"hidden_size": 64, "num_hidden_layers": 4096, "num_attention_heads": 4096, "num_key_value_heads": 4096,
             "head_dim": 8192, "vocab_size": 10, "intermediate_size": 8, "max_position_embeddings": 4194304}
            """))
        #expect(throws: ModelError.self) { try KVCache(config: config, capacity: 4_194_304) }
        // One position of it is 1 TiB: more than any memory here, so refused too, naming the size.
        #expect { try KVCache(config: config, capacity: 1) } throws: { "\($0)".contains("GiB for its KV cache") }
        let small = try ModelConfig.load(path: try writeTemp("""
            {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8}
            """))
        #expect(try KVCache(config: small, capacity: 1).capacity == 1)
    }

    @Test func defaultsFollowTheSpec() throws {
        let config = try ModelConfig.load(path: try writeTemp("""
            {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10,
             "intermediate_size": 8, "eos_token_id": 3}
            """))
        #expect(config.numKeyValueHeads == 4)
        #expect(config.headDim == 16)
        #expect(config.normTopkProb == false)
        #expect(config.rmsNormEps == 1e-6)
        #expect(config.ropeTheta == 1e6)
        #expect(config.attentionBias == false)
        #expect(config.tieWordEmbeddings == nil)
        #expect(config.moeLayers.isEmpty)
        #expect(config.eosTokenIds == [3])
    }

    @Test func alternativeSpellingsAreRead() throws {
        let config = try ModelConfig.load(path: try writeTemp("""
            {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
             "vocab_size": 10, "intermediate_size": 8, "moe_intermediate_size": 4, "num_local_experts": 6,
             "num_experts_per_tok": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0},
             "qkv_bias": true, "mlp_only_layers": [1], "decoder_sparse_step": 1}
            """))
        #expect(config.numExperts == 6)
        #expect(config.ropeTheta == 5000)
        #expect(config.attentionBias)
        #expect(config.moeLayers == [0, 2, 3])
        let routed = try ModelConfig.load(path: try writeTemp("""
            {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "vocab_size": 10,
             "intermediate_size": 8, "moe_intermediate_size": 4, "n_routed_experts": 5, "num_experts_per_tok": 1,
             "decoder_sparse_step": 2, "first_k_dense_replace": 0}
            """))
        #expect(routed.numExperts == 5)
        #expect(routed.moeLayers == [1, 3])  // (i + 1) % step == 0
    }

    @Test(arguments: [
        ("{\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10}", "hidden_size"),
        ("{\"hidden_size\": \"64\", \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10}", "hidden_size"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 6, \"num_key_value_heads\": 4, \"head_dim\": 16, \"vocab_size\": 10, \"intermediate_size\": 8}", "num_key_value_heads"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10}", "intermediate_size"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10, \"num_experts\": 4, \"num_experts_per_tok\": 5, \"moe_intermediate_size\": 4}", "num_experts_per_tok"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10, \"intermediate_size\": 8, \"eos_token_id\": 10}", "eos_token_id"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10, \"intermediate_size\": 8, \"mlp_only_layers\": [2]}", "mlp_only_layers"),
        ("{\"hidden_size\": 60, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10, \"intermediate_size\": 8, \"head_dim\": 15}", "head_dim"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10, \"intermediate_size\": 8, \"rope_parameters\": {\"rope_theta\": \"big\"}}", "rope_parameters.rope_theta"),
        ("{\"hidden_size\": 64,", "(file)"),
        ("{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10, \"intermediate_size\": 8, \"max_position_embeddings\": 100000000000}", "max_position_embeddings"),
    ])
    func inconsistentConfigsNameTheField(json: String, field: String) throws {
        let path = try writeTemp(json)
        #expect {
            try ModelConfig.load(path: path)
        } throws: { error in
            guard case let ModelError.config(file, f, _) = error else { return false }
            return file == path && f == field
        }
    }
}

/// Each family reads its own config.json names and defaults and sets its switches
/// (Sources/NekoModel/Families/); the values below are transformers 5.25's configuration classes'.
@Suite struct FamilyConfigTests {
    let base = #""hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "vocab_size": 100"#

    func load(_ json: String) throws -> ModelConfig { try ModelConfig.load(path: try writeTemp("{" + json + "}")) }

    @Test func anUnknownModelTypeListsTheSupportedOnes() throws {
        let path = try writeTemp("{\"model_type\": \"llama\", \(base), \"intermediate_size\": 8}")
        #expect {
            try ModelConfig.load(path: path)
        } throws: { error in
            guard case let ModelError.config(_, field, message) = error else { return false }
            return field == "model_type" && message.contains("'llama'")
                && ["nekomind", "qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "granitemoe"].allSatisfy(message.contains)
        }
    }

    @Test func withoutAModelTypeTheRulesAreNekoMinds() throws {
        let c = try load(base + #", "intermediate_size": 8"#)
        #expect(c.family == "NekoMind" && c.modelType == nil)
        #expect(c.qkNorm == .perHeadWhenPresent && c.sharedExpert == .gatedWhenPresent && c.router == .softmaxThenTopK)
    }

    @Test func olmoeReadsItsDefaultsAndNormsTheWholeProjection() throws {
        let c = try load(#""model_type": "olmoe", "# + base + #", "intermediate_size": 32, "clip_qkv": 8.0"#)
        #expect(c.family == "OLMoE" && c.modelType == "olmoe")
        #expect(c.numExperts == 64 && c.numExpertsPerTok == 8 && c.moeIntermediateSize == 32)
        #expect(c.moeLayers == [0, 1, 2, 3])
        #expect(c.rmsNormEps == 1e-5 && c.ropeTheta == 10000 && c.maxPositionEmbeddings == 4096)
        #expect(c.qkNorm == .wholeProjection && c.sharedExpert == .none && c.clipQKV == 8 && !c.normTopkProb)
    }

    @Test func mixtralRenormalisesAndWindowsEveryLayerWhenASlidingWindowIsSet() throws {
        let c = try load(#""model_type": "mixtral", "# + base + #", "intermediate_size": 32, "num_local_experts": 4, "sliding_window": 16"#)
        #expect(c.family == "Mixtral" && c.numExperts == 4 && c.numExpertsPerTok == 2 && c.normTopkProb)
        #expect(c.slidingWindow == 16 && c.slidingLayers == [0, 1, 2, 3])
        #expect(c.ropeTheta == 1e6 && c.rmsNormEps == 1e-5)
        let unwindowed = try load(#""model_type": "mixtral", "# + base + #", "intermediate_size": 32, "sliding_window": null"#)
        #expect(unwindowed.slidingWindow == nil)
    }

    @Test func graniteRoutesTopKFirstAndReadsItsMultipliers() throws {
        let c = try load(#""model_type": "granitemoe", "# + base + #", "intermediate_size": 32, "embedding_multiplier": 12.0, "attention_multiplier": 0.0078125, "residual_multiplier": 0.22, "logits_scaling": 8.0, "attention_bias": true"#)
        #expect(c.family == "Granite-MoE" && c.router == .topKThenSoftmax)
        #expect(c.embeddingMultiplier == 12 && c.attentionScale == 0.0078125 && c.residualMultiplier == 0.22 && c.logitsScaling == 8)
        #expect(c.attentionBias && c.outputBias)
        #expect(throws: ModelError.self) {
            try load(#""model_type": "granitemoe", "# + base + #", "intermediate_size": 32, "logits_scaling": 0"#)
        }
    }

    @Test func qwen2MoEHasQKVBiasesByDefaultAndWindowsEvenLayersBelowMaxWindowLayers() throws {
        let c = try load(#""model_type": "qwen2_moe", "# + base + #", "use_sliding_window": true, "sliding_window": 8, "max_window_layers": 3"#)
        #expect(c.family == "Qwen2-MoE" && c.attentionBias && !c.outputBias && c.sharedExpert == .gated && c.qkNorm == .none)
        #expect(c.slidingWindow == 8 && c.slidingLayers == [0, 2])
        let typed = try load(#""model_type": "qwen2_moe", "# + base + #", "use_sliding_window": true, "sliding_window": 8, "layer_types": ["full_attention", "sliding_attention", "full_attention", "full_attention"]"#)
        #expect(typed.slidingLayers == [1])
        let off = try load(#""model_type": "qwen2_moe", "# + base + #", "sliding_window": 8"#)
        #expect(off.slidingWindow == nil)
    }

    @Test func qwen3MoEReadsTransformers5sSpelling() throws {
        let c = try load(#""model_type": "qwen3_moe", "# + base + #", "num_local_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 8"#)
        #expect(c.family == "Qwen3-MoE" && c.numExperts == 16 && c.qkNorm == .perHead && c.sharedExpert == .none)
        #expect(c.ropeTheta == 10000)
    }

    @Test func scaledRoPEIsRefusedNamingTheField() throws {
        let path = try writeTemp(#"{"model_type": "mixtral", "# + base + #", "intermediate_size": 8, "rope_scaling": {"type": "yarn", "factor": 4.0}}"#)
        #expect {
            try ModelConfig.load(path: path)
        } throws: { error in
            guard case let ModelError.config(_, field, message) = error else { return false }
            return field == "rope_scaling.type" && message.contains("yarn")
        }
    }
}
