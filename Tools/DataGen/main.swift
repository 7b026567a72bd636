// placeholder until touchstone-datagen lands
