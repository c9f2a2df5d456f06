/**
 * The tfjs the library computes with, for users' own tensors.
 *
 * @module
 */
import * as tfjs from "@tensorflow/tfjs";

/**
 * The tfjs namespace the library computes with (`@tensorflow/tfjs` 4.22):
 * use it for your own tensors so that they live in the same engine and
 * backend as the model's, with no version to match by hand.
 */
export const tf: typeof tfjs = tfjs;

/** A tfjs tensor (`tf.Tensor`): what the model's functions take and return. */
export type Tensor = tfjs.Tensor;
/** A tfjs variable (`tf.Variable`): how the model holds its parameters. */
export type Variable = tfjs.Variable;
