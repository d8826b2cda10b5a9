"""keras-io "Character-level recurrent sequence-to-sequence model" (Keras 3 version,
examples/keras_io/nlp/lstm_seq2seq.py), with only `import keras` swapped. An LSTM encoder hands
its final states to an LSTM decoder trained with teacher forcing on one-hot arrays (fit,
rmsprop, categorical crossentropy); then the inference sub-models are rebuilt from the trained
model's layers (`model.input[0]`, `model.layers[2].output`, `keras.Input(shape=(latent_dim,))`,
`decoder_lstm(decoder_inputs, initial_state=...)`) and decode_sequence samples greedily, one
character at a time.

Data: no download. The English->French file is replaced by a synthetic parallel corpus whose
"translation" is a fixed rule, so decoding can be checked: an input "sentence" is one or two
random lowercase words, its target is the sentence reversed with each letter shifted by one
(`"ab cd"` -> `"ed cb"`), framed with the example's "\t" start and "\n" end tokens.
EXAMPLE_SAMPLES, EXAMPLE_EPOCHS and EXAMPLE_LATENT (env) cut the run; main() returns
(first epoch loss, last epoch loss, per-character accuracy of greedy decoding, fraction of
sentences decoded exactly), both accuracies over the first EXAMPLE_DECODE training inputs.

The example saves the trained model and reloads it before building the sampling models; here
the save/load round trip is kept (to a temporary directory). The encoder and decoder inputs are
`keras.Input(shape=(None, tokens))`: the decoder model trains on 11-step sequences and samples
one step at a time.

Figures (same script and data; Keras 3.15 through keras_ref with JAX, on the same 2-core CPU):
- full run (10,000 sentences, latent_dim 256, 30 epochs, batch 64, validation_split 0.2):
  pynn loss 1.310 -> 0.0103, val_accuracy 0.991, greedy decoding of the first 100 training
  inputs 0.982 of the characters right and 94 sentences exact (2 min 36 s);
  Keras loss 1.294 -> 0.0132, val_accuracy 0.996, 0.984 of the characters and 96 exact (4 min).
- the test's cut (3,000 sentences, latent_dim 64, 10 epochs, 20 decoded): pynn loss
  1.662 -> 0.945, 0.387 of the characters, 2 exact; Keras 1.680 -> 0.936, 0.242, 1 exact.
"""

import os
import tempfile

import numpy as np

import pynn as keras


def make_corpus(num_samples, seed=0):
    rng = np.random.default_rng(seed)
    letters = "abcdefgh"
    shifted = {c: letters[(i + 1) % len(letters)] for i, c in enumerate(letters)}
    shifted[" "] = " "
    input_texts, target_texts = [], []
    for _ in range(num_samples):
        words = ["".join(rng.choice(list(letters), size=rng.integers(2, 5)))
                 for _ in range(rng.integers(1, 3))]
        text = " ".join(words)
        input_texts.append(text)
        target_texts.append("\t" + "".join(shifted[c] for c in reversed(text)) + "\n")
    return input_texts, target_texts


def main():
    batch_size = 64
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "30"))
    latent_dim = int(os.environ.get("EXAMPLE_LATENT", "256"))
    num_samples = int(os.environ.get("EXAMPLE_SAMPLES", "10000"))
    n_decode = int(os.environ.get("EXAMPLE_DECODE", "100"))
    keras.utils.set_random_seed(1)

    ## Prepare the data
    input_texts, target_texts = make_corpus(num_samples)
    input_characters = sorted(set("".join(input_texts)) | {" "})
    target_characters = sorted(set("".join(target_texts)) | {" "})
    num_encoder_tokens = len(input_characters)
    num_decoder_tokens = len(target_characters)
    max_encoder_seq_length = max(len(t) for t in input_texts)
    max_decoder_seq_length = max(len(t) for t in target_texts)
    print("Number of samples:", len(input_texts))
    print("Number of unique input tokens:", num_encoder_tokens)
    print("Number of unique output tokens:", num_decoder_tokens)
    print("Max sequence length for inputs:", max_encoder_seq_length)
    print("Max sequence length for outputs:", max_decoder_seq_length)

    input_token_index = {char: i for i, char in enumerate(input_characters)}
    target_token_index = {char: i for i, char in enumerate(target_characters)}

    encoder_input_data = np.zeros(
        (len(input_texts), max_encoder_seq_length, num_encoder_tokens), dtype="float32")
    decoder_input_data = np.zeros(
        (len(input_texts), max_decoder_seq_length, num_decoder_tokens), dtype="float32")
    decoder_target_data = np.zeros(
        (len(input_texts), max_decoder_seq_length, num_decoder_tokens), dtype="float32")
    for i, (input_text, target_text) in enumerate(zip(input_texts, target_texts)):
        for t, char in enumerate(input_text):
            encoder_input_data[i, t, input_token_index[char]] = 1.0
        encoder_input_data[i, t + 1:, input_token_index[" "]] = 1.0
        for t, char in enumerate(target_text):
            # the target is the decoder input one step ahead, without the start character
            decoder_input_data[i, t, target_token_index[char]] = 1.0
            if t > 0:
                decoder_target_data[i, t - 1, target_token_index[char]] = 1.0
        decoder_input_data[i, t + 1:, target_token_index[" "]] = 1.0
        decoder_target_data[i, t:, target_token_index[" "]] = 1.0

    ## Build the model
    encoder_inputs = keras.Input(shape=(None, num_encoder_tokens))
    encoder = keras.layers.LSTM(latent_dim, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]  # the encoder outputs are discarded

    decoder_inputs = keras.Input(shape=(None, num_decoder_tokens))
    decoder_lstm = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = keras.layers.Dense(num_decoder_tokens, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)

    ## Train the model
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        [encoder_input_data, decoder_input_data],
        decoder_target_data,
        batch_size=batch_size,
        epochs=epochs,
        validation_split=0.2,
        verbose=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s2s_model.keras")
        model.save(path)
        model = keras.models.load_model(path)

    ## Run inference (sampling): sub-models built from the trained model's layers
    encoder_inputs = model.input[0]  # input_1
    encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output  # lstm_1
    encoder_states = [state_h_enc, state_c_enc]
    encoder_model = keras.Model(encoder_inputs, encoder_states)

    decoder_inputs = model.input[1]  # input_2
    decoder_state_input_h = keras.Input(shape=(latent_dim,))
    decoder_state_input_c = keras.Input(shape=(latent_dim,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(
        decoder_inputs, initial_state=decoder_states_inputs)
    decoder_states = [state_h_dec, state_c_dec]
    decoder_dense = model.layers[4]
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = keras.Model(
        [decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states)

    reverse_target_char_index = {i: char for char, i in target_token_index.items()}

    def decode_sequence(input_seq):
        states_value = encoder_model.predict(input_seq, verbose=0)
        target_seq = np.zeros((1, 1, num_decoder_tokens))
        target_seq[0, 0, target_token_index["\t"]] = 1.0
        decoded_sentence = ""
        while True:
            output_tokens, h, c = decoder_model.predict([target_seq] + states_value, verbose=0)
            sampled_token_index = int(np.argmax(output_tokens[0, -1, :]))
            sampled_char = reverse_target_char_index[sampled_token_index]
            decoded_sentence += sampled_char
            if sampled_char == "\n" or len(decoded_sentence) > max_decoder_seq_length:
                break
            target_seq = np.zeros((1, 1, num_decoder_tokens))
            target_seq[0, 0, sampled_token_index] = 1.0
            states_value = [h, c]
        return decoded_sentence

    chars_right = chars_total = exact = 0
    for seq_index in range(n_decode):
        input_seq = encoder_input_data[seq_index:seq_index + 1]
        decoded = decode_sequence(input_seq)
        expected = target_texts[seq_index][1:]
        chars_right += sum(a == b for a, b in zip(decoded, expected))
        chars_total += len(expected)
        exact += decoded == expected
        if seq_index < 5:
            print("-")
            print("Input sentence:", input_texts[seq_index])
            print("Decoded sentence:", repr(decoded), "expected:", repr(expected))
    losses = history.history["loss"]
    figures = (losses[0], losses[-1], chars_right / chars_total, exact / n_decode)
    print(f"loss {figures[0]:.4f} -> {figures[1]:.4f}, decoded per-char accuracy "
          f"{figures[2]:.3f}, exact sentences {figures[3]:.3f}")
    return figures


if __name__ == "__main__":
    main()
