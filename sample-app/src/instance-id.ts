/** Injection token of this instance's name, which the sample writes next to what it does so that runs can be told apart. */
export const INSTANCE_ID = Symbol('INSTANCE_ID');
