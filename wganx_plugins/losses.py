"""Adversarial objectives: the Wasserstein loss and the non-saturating GAN loss of the TF2 WGAN-LP example."""
from wganx import hookimpl
from wganx.records import LossSpec


def _wasserstein_critic(ops, d_real, d_fake):
    return ops.mean(d_fake) - ops.mean(d_real)


def _wasserstein_generator(ops, d_fake):
    return -ops.mean(d_fake)


def _nonsaturating_critic(ops, d_real, d_fake):
    # -log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), with D returning logits.
    return ops.mean(ops.softplus(-d_real)) + ops.mean(ops.softplus(d_fake))


def _nonsaturating_generator(ops, d_fake):
    # Goodfellow et al.'s trick: maximise log D(G(z)) instead of minimising log(1 - D(G(z))).
    return ops.mean(ops.softplus(-d_fake))


@hookimpl
def wganx_losses():
    return [
        LossSpec("wasserstein", _wasserstein_critic, _wasserstein_generator,
                 "critic: E[D(fake)] - E[D(real)]; generator: -E[D(fake)] (the NNabla example)"),
        LossSpec("nonsaturating", _nonsaturating_critic, _nonsaturating_generator,
                 "standard GAN with logits; generator maximises log D(G(z)) (the TF2 WGAN-LP example)"),
    ]
