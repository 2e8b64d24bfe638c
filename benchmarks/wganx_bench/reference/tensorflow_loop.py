"""A plain hand-written TensorFlow 2 WGAN-GP loop: Keras layers, NHWC, ``tf.function`` steps
with a ``tf.GradientTape`` nested in the step's tape for the penalty.

Seed 000's architecture (``nnabla-cifar``) and the WGAN-GP toy MLP; Adam(1e-4, 0.5, 0.9).
Real batches come from a pool of numpy NHWC arrays passed to the step (converted per call,
as a ``tf.data``-less script does); ``z`` and the interpolation weights are drawn inside the
step with ``tf.random``. ``WGANX_TF_XLA=1`` compiles the steps with XLA (``jit_compile``).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from wganx.backend import prefer_python_protobuf  # noqa: E402

prefer_python_protobuf()  # before TensorFlow first imports protobuf

import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402
from tensorflow.keras import layers  # noqa: E402

POOL = 8


def cifar_generator(latent, maps, channels, image_size):
    n_up = int(np.log2(image_size // 4))
    first = maps * 2 ** (n_up - 1)
    z = keras.Input((latent,))
    h = layers.Dense(first * 16)(z)
    h = layers.Reshape((4, 4, first))(h)
    h = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(h))
    for i in range(n_up):
        h = layers.Conv2D(maps * 2 ** (n_up - 1 - i), 3, padding="same")(h)
        h = layers.UpSampling2D(2, interpolation="nearest")(h)
        h = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(h))
    x = layers.Conv2D(channels, 3, padding="same", activation="tanh")(h)
    return keras.Model(z, x)


def cifar_critic(maps, channels, image_size):
    x = keras.Input((image_size, image_size, channels))
    h = x
    for mult in (1, 2, 4):
        h = layers.Conv2D(maps * mult, 3, padding="valid")(h)
        h = layers.LeakyReLU(0.01)(layers.AveragePooling2D(2)(h))
    return keras.Model(x, layers.Dense(1)(layers.Flatten()(h)))


def mlp(d_in, d_out, width=512, depth=3):
    x = keras.Input((d_in,))
    h = x
    for _ in range(depth):
        h = layers.Dense(width, activation="relu")(h)
    return keras.Model(x, layers.Dense(d_out)(h))


class Step:
    def __init__(self, spec):
        tf.random.set_seed(spec.get("seed", 0))
        ctx = spec.get("context", "cpu")
        self.device = "/CPU:0" if ctx == "cpu" else f"/GPU:{spec.get('device_id', 0)}"
        if spec.get("type_config", "float") == "half":
            keras.mixed_precision.set_global_policy("mixed_float16")
        self.n, self.latent, self.n_critic = spec["batch_size"], spec["latent"], spec["n_critic"]
        gp = spec.get("regularizer", "gp") == "gp"
        with tf.device(self.device):
            if spec["arch"] == "nnabla-cifar":
                self.G = cifar_generator(spec["latent"], spec["maps"], spec["channels"], spec["image_size"])
                self.D = cifar_critic(spec["maps"], spec["channels"], spec["image_size"])
                shape = (spec["image_size"], spec["image_size"], spec["channels"])
            elif spec["arch"] == "mlp":
                self.G, self.D = mlp(spec["latent"], spec["data_dim"], spec["maps"]), mlp(spec["data_dim"], 1, spec["maps"])
                shape = (spec["data_dim"],)
            else:
                raise ValueError(f"no plain TensorFlow loop for architecture {spec['arch']!r}")
            self.opt_g = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)
            self.opt_d = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)
        rng = np.random.default_rng(spec.get("seed", 0))
        self.pool = [rng.uniform(-1, 1, (self.n,) + shape).astype(np.float32) for _ in range(POOL)]
        self.k, self.last = 0, None
        n, latent, G, D = self.n, self.latent, self.G, self.D
        eps_shape = (n,) + (1,) * len(shape)
        jit = os.environ.get("WGANX_TF_XLA", "0") == "1"

        @tf.function(jit_compile=jit)
        def critic_step(real):
            z = tf.random.normal((n, latent))
            fake = tf.cast(G(z, training=True), tf.float32)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.cast(D(fake, training=True), tf.float32)) - \
                    tf.reduce_mean(tf.cast(D(real, training=True), tf.float32))
                if gp:
                    eps = tf.random.uniform(eps_shape)
                    x_hat = eps * real + (1.0 - eps) * fake
                    with tf.GradientTape() as inner:
                        inner.watch(x_hat)
                        out = tf.reduce_sum(tf.cast(D(x_hat, training=True), tf.float32))
                    g = inner.gradient(out, x_hat)
                    norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=list(range(1, len(eps_shape)))) + 1e-12)
                    loss += 10.0 * tf.reduce_mean(tf.square(norm - 1.0))
            grads = tape.gradient(loss, D.trainable_variables)
            self.opt_d.apply_gradients(zip(grads, D.trainable_variables))
            return loss

        @tf.function(jit_compile=jit)
        def generator_step():
            z = tf.random.normal((n, latent))
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(tf.cast(D(G(z, training=True), training=True), tf.float32))
            grads = tape.gradient(loss, G.trainable_variables)
            self.opt_g.apply_gradients(zip(grads, G.trainable_variables))
            return loss

        self._critic, self._generator = critic_step, generator_step

    def critic_step(self):
        real = self.pool[self.k % POOL]
        self.k += 1
        with tf.device(self.device):
            self.last = self._critic(real)

    def generator_step(self):
        with tf.device(self.device):
            self.last = self._generator()

    def iteration(self):
        for _ in range(self.n_critic):
            self.critic_step()
        self.generator_step()

    def sync(self):
        if self.last is not None:
            float(self.last.numpy())


def make_step(spec) -> Step:
    return Step(spec)


def versions():
    return {"tensorflow": tf.__version__}
